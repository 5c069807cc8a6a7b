# syntax=docker/dockerfile:1
# The edge: nginx plus the SPA's static files. nginx renders nginx/edge.conf.template at start-up with
# the official image's template step (envsubst over /etc/nginx/templates/*.template, limited to
# variables matching NGINX_ENVSUBST_FILTER), so compose and the ECS task definition configure it
# only through EDGE_* environment variables; no other file differs between environments.
#
# Build from the repository root:
#   docker build -f deploy/docker/nginx.Dockerfile -t entra-bff-edge/nginx:<tag> .

ARG NODE_IMAGE=node:22-bookworm-slim
# The unprivileged variant runs as uid 101, keeps its pid file and temp paths under /tmp and has the
# same template entrypoint as the official image. The alpine variant brings busybox wget for the
# container health check.
ARG NGINX_IMAGE=nginxinc/nginx-unprivileged:1.28-alpine

FROM ${NODE_IMAGE} AS spa
WORKDIR /spa
COPY spa/package.json spa/package-lock.json ./
RUN SCARF_ANALYTICS=false npm ci --no-audit --no-fund --loglevel=error
COPY spa/ ./
RUN npm run build

FROM ${NGINX_IMAGE}
USER root
# The image's default server would also listen on 8080 and serve its welcome page: remove it so the
# rendered edge.conf is the only server. conf.d is where the template step writes; /tmp holds the pid
# file and request buffers. Both are volumes so the root filesystem can stay read-only; ECS copies
# these (uid 101 owned) directories into the task's bind mounts.
RUN rm -f /etc/nginx/conf.d/default.conf \
 && mkdir -p /etc/nginx/templates /usr/share/nginx/spa \
 && chown 101:101 /etc/nginx/conf.d /tmp \
 && chmod 1777 /tmp
COPY --chown=0:0 nginx/edge.conf.template /etc/nginx/templates/edge.conf.template
COPY --from=spa --chown=0:0 /spa/dist/ /usr/share/nginx/spa/
ENV NGINX_ENVSUBST_FILTER=^EDGE_ \
    NGINX_ENVSUBST_TEMPLATE_DIR=/etc/nginx/templates \
    NGINX_ENVSUBST_OUTPUT_DIR=/etc/nginx/conf.d
VOLUME ["/etc/nginx/conf.d", "/tmp"]
USER 101:101
EXPOSE 8080
