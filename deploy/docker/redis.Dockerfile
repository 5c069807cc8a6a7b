# DEVELOPMENT ONLY: Redis for compose.yaml, standing in for ElastiCache. Debian 12's Redis on the
# project's one base image; compose.yaml's command sets the ACL user and password.
#
# Build from the repository root:
#   docker build -f deploy/docker/redis.Dockerfile -t entra-bff-edge/redis:local .

ARG BASE_IMAGE=debian:12-slim
FROM ${BASE_IMAGE}
# The redis user first, with the official image's fixed ids (999), so compose's `user:` and the
# data volume's owner are known.
RUN groupadd --system --gid 999 redis \
 && useradd --system --uid 999 --gid 999 --no-create-home --home-dir /data --shell /usr/sbin/nologin redis \
 && apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && install -d -o 999 -g 999 -m 0750 /data
VOLUME ["/data"]
WORKDIR /data
USER 999:999
EXPOSE 6379
CMD ["redis-server", "--dir", "/data", "--protected-mode", "yes"]
