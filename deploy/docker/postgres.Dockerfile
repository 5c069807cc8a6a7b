# DEVELOPMENT ONLY: PostgreSQL for compose.yaml, standing in for RDS. Debian 12's PostgreSQL 15 on
# the project's one base image, with the part of the official postgres image's entrypoint compose
# uses (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB on the first start).
#
# Build from the repository root:
#   docker build -f deploy/docker/postgres.Dockerfile -t entra-bff-edge/postgres:local .

ARG BASE_IMAGE=debian:12-slim
FROM ${BASE_IMAGE}
# The postgres user first, with the official image's fixed ids (999), so compose's `user:` and the
# data volume's owner are known; Debian's postgresql-common must not create its own "main" cluster.
RUN groupadd --system --gid 999 postgres \
 && useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/sh postgres \
 && mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && rm -f /etc/ssl/private/ssl-cert-snakeoil.key /etc/ssl/certs/ssl-cert-snakeoil.pem \
 && install -d -o 999 -g 999 -m 0700 /var/lib/postgresql/data \
 && install -d -o 999 -g 999 -m 2775 /var/run/postgresql
COPY --chown=0:0 deploy/docker/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
VOLUME ["/var/lib/postgresql/data"]
USER 999:999
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
CMD ["postgres"]
