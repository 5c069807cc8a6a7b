#!/bin/sh
# The official postgres image's entrypoint (docker-entrypoint.sh), reduced to what compose.yaml uses,
# on Debian's postgresql binaries: on a first start, initdb with $POSTGRES_USER and
# $POSTGRES_PASSWORD (password authentication) and create $POSTGRES_DB; then the command, as the
# postgres user (PostgreSQL refuses root, and these processes run as the invoking user).
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
exec_prefix=""
if [ "$(id -u)" = 0 ]; then
    exec_prefix="setpriv --reuid=postgres --regid=postgres --clear-groups --"
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password_file=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$password_file"
    [ "$(id -u)" = 0 ] && chown postgres "$password_file"
    $exec_prefix "$bin/initdb" --pgdata "$PGDATA" --username "$POSTGRES_USER" --pwfile "$password_file" \
        --auth scram-sha-256 --encoding UTF8 --locale C --no-sync >/dev/null
    rm -f "$password_file"
    echo "CREATE DATABASE \"$POSTGRES_DB\"" | $exec_prefix "$bin/postgres" --single -D "$PGDATA" postgres >/dev/null
fi
if [ "$1" = postgres ]; then
    shift
    # The image listens on every address of its own network namespace; here that is the loopback.
    exec $exec_prefix "$bin/postgres" -D "$PGDATA" -c listen_addresses=127.0.0.1 "$@"
fi
exec "$@"
