# oauth2-proxy, built from its Go module at exactly the version in the repository's
# OAUTH2_PROXY_VERSION file with the project's oauth2-proxy/patches applied (the binary `make run` and
# the tests use), with the project's two config templates (the core options and the alpha
# configuration) rendered at start-up from O2P_* environment variables.
#
# Build from the repository root:
#   docker build -f deploy/docker/oauth2-proxy.Dockerfile -t entra-bff-edge/oauth2-proxy:<tag> .

ARG BASE_IMAGE=debian:12-slim

FROM ${BASE_IMAGE} AS build
# Debian 12's Go (1.19) is older than the pinned module's go directive: it only fetches the Go
# toolchain that builds it (the same release scripts/setup.sh uses), published as the module
# golang.org/toolchain and checked against the checksum database. patch applies oauth2-proxy/patches.
ARG GO_TOOLCHAIN=go1.26.8
ARG TARGETARCH
RUN apt-get update \
 && apt-get install -y --no-install-recommends golang-go patch ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV GOPATH=/go GOMODCACHE=/go/pkg/mod GOCACHE=/root/.cache/go-build GOTOOLCHAIN=local
WORKDIR /build
COPY OAUTH2_PROXY_VERSION ./
COPY oauth2-proxy/build.sh oauth2-proxy/build.sh
COPY oauth2-proxy/patches oauth2-proxy/patches
# The version comes from the file, never from a second copy here, so the image cannot drift from
# the version the tests ran. oauth2-proxy/build.sh is the recipe scripts/setup.sh runs too: it
# downloads the module github.com/oauth2-proxy/oauth2-proxy/v7 at that version (checked against the
# checksum database), applies the patches to a copy and builds it with the module's own go.sum, so
# --version shows the same patch mark as the tests' binary. The module and build caches are BuildKit
# cache mounts: kept between builds, never in the image. build_ca: see deploy/docker/prepare.py.
RUN --mount=type=secret,id=build_ca \
    --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    if grep -qs 'BEGIN CERTIFICATE' /run/secrets/build_ca; then export SSL_CERT_FILE=/run/secrets/build_ca; fi \
 && version=$(tr -d ' \n' < OAUTH2_PROXY_VERSION) \
 && case "$version" in v7.*) ;; *) echo "OAUTH2_PROXY_VERSION must be v7.x, got '$version'" >&2; exit 1 ;; esac \
 && toolchain=$(GOFLAGS=-mod=mod go mod download -json "golang.org/toolchain@v0.0.1-$GO_TOOLCHAIN.linux-${TARGETARCH:-amd64}" \
      | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') \
 && [ -f "$toolchain/bin/go" ] \
 && chmod +x "$toolchain"/bin/* "$toolchain"/pkg/tool/*/* \
 && PATH="$toolchain/bin:$PATH" sh oauth2-proxy/build.sh "$version" /build/src /out/oauth2-proxy \
 && /out/oauth2-proxy --version

FROM ${BASE_IMAGE}
# ca-certificates: the public CAs of login.microsoftonline.com and ElastiCache's TLS endpoint
# (O2P_PROVIDER_CA_FILE=/etc/ssl/certs/ca-certificates.crt); gettext-base: envsubst for the templates;
# wget: the container health check (GET /ready, which also pings Redis).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates gettext-base wget \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 65532 oauth2-proxy \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin oauth2-proxy \
 && mkdir -p /etc/oauth2-proxy \
 && chmod 1777 /tmp
COPY --from=build /out/oauth2-proxy /usr/local/bin/oauth2-proxy
COPY oauth2-proxy/oauth2-proxy.cfg.template /etc/oauth2-proxy/oauth2-proxy.cfg.template
COPY oauth2-proxy/oauth2-proxy.alpha.yaml.template /etc/oauth2-proxy/oauth2-proxy.alpha.yaml.template
COPY deploy/docker/oauth2-proxy-entrypoint.sh /usr/local/bin/oauth2-proxy-entrypoint
# The rendered configuration files are written to /tmp (a volume), so the root filesystem stays
# read-only.
VOLUME ["/tmp"]
USER 65532:65532
EXPOSE 4180
ENTRYPOINT ["/usr/local/bin/oauth2-proxy-entrypoint"]
