# syntax=docker/dockerfile:1
# oauth2-proxy, built from its Go module at exactly the version in the repository's
# OAUTH2_PROXY_VERSION file with the project's oauth2-proxy/patches applied (the binary `make run` and
# the tests use), with the project's config template rendered at start-up from O2P_* environment
# variables.
#
# Build from the repository root:
#   docker build -f deploy/docker/oauth2-proxy.Dockerfile -t entra-bff-edge/oauth2-proxy:<tag> .

# The builder only needs Go (at least the go directive of the pinned module's go.mod); the binary is
# static (CGO_ENABLED=0), so the runtime distribution does not have to match.
ARG GO_IMAGE=golang:1.26
ARG RUNTIME_IMAGE=debian:12-slim

FROM ${GO_IMAGE} AS build
# patch applies oauth2-proxy/patches; the Go image has git but not patch.
RUN command -v patch >/dev/null \
 || { apt-get update && apt-get install -y --no-install-recommends patch && rm -rf /var/lib/apt/lists/*; }
WORKDIR /build
COPY OAUTH2_PROXY_VERSION ./
COPY oauth2-proxy/build.sh oauth2-proxy/build.sh
COPY oauth2-proxy/patches oauth2-proxy/patches
# The version comes from the file, never from a second copy here, so the image cannot drift from
# the version the tests ran. oauth2-proxy/build.sh is the recipe scripts/setup.sh runs too: it
# downloads the module github.com/oauth2-proxy/oauth2-proxy/v7 at that version (checked against the
# checksum database), applies the patches to a copy and builds it with the module's own go.sum, so
# --version shows the same patch mark as the tests' binary.
RUN version=$(tr -d ' \n' < OAUTH2_PROXY_VERSION) \
 && case "$version" in v7.*) ;; *) echo "OAUTH2_PROXY_VERSION must be v7.x, got '$version'" >&2; exit 1 ;; esac \
 && sh oauth2-proxy/build.sh "$version" /build/src /out/oauth2-proxy \
 && /out/oauth2-proxy --version

FROM ${RUNTIME_IMAGE}
# ca-certificates: the public CAs of login.microsoftonline.com and ElastiCache's TLS endpoint
# (O2P_PROVIDER_CA_FILE=/etc/ssl/certs/ca-certificates.crt); gettext-base: envsubst for the template;
# wget: the container health check (GET /ready, which also pings Redis).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates gettext-base wget \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 oauth2-proxy \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin oauth2-proxy \
 && mkdir -p /etc/oauth2-proxy \
 && chown 65532:65532 /tmp \
 && chmod 1777 /tmp
COPY --from=build /out/oauth2-proxy /usr/local/bin/oauth2-proxy
COPY oauth2-proxy/oauth2-proxy.cfg.template /etc/oauth2-proxy/oauth2-proxy.cfg.template
COPY deploy/docker/oauth2-proxy-entrypoint.sh /usr/local/bin/oauth2-proxy-entrypoint
# The rendered configuration is written to /tmp (a volume), so the root filesystem stays read-only.
VOLUME ["/tmp"]
USER 65532:65532
EXPOSE 4180
ENTRYPOINT ["/usr/local/bin/oauth2-proxy-entrypoint"]
