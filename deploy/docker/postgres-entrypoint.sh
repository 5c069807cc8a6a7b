#!/bin/sh
# The part of the official postgres image's entrypoint that compose.yaml uses, on Debian's PostgreSQL:
# on the first start (an empty data directory), initdb with $POSTGRES_USER and $POSTGRES_PASSWORD
# (scram-sha-256 for every connection) and create $POSTGRES_DB; then the command. Runs as the
# image's postgres user (uid 999), which owns the data directory; the password never reaches the
# command line or the log.
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
    password_file=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$password_file"
    "$bin/initdb" --pgdata "$PGDATA" --username "$POSTGRES_USER" --pwfile "$password_file" \
        --auth scram-sha-256 --encoding UTF8 --locale C.UTF-8 >/dev/null
    rm -f "$password_file"
    # Every address of the container's own network namespace, password only (initdb's local rules
    # cover the socket and the loopback).
    printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
    if [ "$POSTGRES_DB" != postgres ]; then
        echo "CREATE DATABASE \"$POSTGRES_DB\"" | "$bin/postgres" --single -D "$PGDATA" postgres >/dev/null
    fi
    echo "postgres: initialised $PGDATA for user $POSTGRES_USER, database $POSTGRES_DB"
fi
if [ "$1" = postgres ]; then
    shift
    exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
