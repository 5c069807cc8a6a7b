# DEVELOPMENT ONLY: Jaeger v2 for compose.yaml's `tracing` profile, where the verifier, the API and
# nginx (through the verifier) send their spans when deploy/docker/tracing.env turns tracing on. It
# never runs on ECS: there the AWS Distro for OpenTelemetry collector sends them to X-Ray
# (ecs-taskdefs/edge-api.tracing.json). Built from its Go module, github.com/jaegertracing/jaeger at
# the version scripts/setup.sh builds for `make run` and the tests (./cmd/jaeger; the module's
# v1.75.0 is the release Jaeger also calls v2.12.0), with deploy/docker/jaeger.yaml.
#
# Build from the repository root:
#   docker build -f deploy/docker/jaeger.Dockerfile -t entra-bff-edge/jaeger:<tag> .

ARG BASE_IMAGE=debian:12-slim

FROM ${BASE_IMAGE} AS build
# Debian 12's Go (1.19) is older than the module's go directive: it only fetches the Go toolchain
# that builds it (the release oauth2-proxy.Dockerfile and scripts/setup.sh use), published as the
# module golang.org/toolchain and checked against the checksum database.
ARG GO_TOOLCHAIN=go1.26.8
ARG JAEGER_VERSION=v1.75.0
ARG TARGETARCH
RUN apt-get update \
 && apt-get install -y --no-install-recommends golang-go ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV GOPATH=/go GOMODCACHE=/go/pkg/mod GOCACHE=/root/.cache/go-build GOTOOLCHAIN=local
# `go install module@version` refuses a module whose go.mod has replace directives, as Jaeger's does:
# the build runs inside the downloaded module (checked against the checksum database), with its own
# go.mod and go.sum pinning every dependency, as scripts/setup.sh builds it. The version is written
# where `jaeger version` reads it. The module and build caches are BuildKit cache mounts: kept between
# builds, never in the image. build_ca: see deploy/docker/prepare.py.
RUN --mount=type=secret,id=build_ca \
    --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    if grep -qs 'BEGIN CERTIFICATE' /run/secrets/build_ca; then export SSL_CERT_FILE=/run/secrets/build_ca; fi \
 && toolchain=$(GOFLAGS=-mod=mod go mod download -json "golang.org/toolchain@v0.0.1-$GO_TOOLCHAIN.linux-${TARGETARCH:-amd64}" \
      | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') \
 && [ -f "$toolchain/bin/go" ] \
 && chmod +x "$toolchain"/bin/* "$toolchain"/pkg/tool/*/* \
 && export PATH="$toolchain/bin:$PATH" \
 && src=$(go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_VERSION" \
      | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') \
 && [ -f "$src/go.mod" ] \
 && cd "$src" \
 && CGO_ENABLED=0 go build -buildvcs=false -trimpath \
      -ldflags "-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$JAEGER_VERSION" \
      -o /out/jaeger ./cmd/jaeger \
 && /out/jaeger --version

FROM ${BASE_IMAGE}
# wget: the compose health check (GET the query API).
RUN apt-get update \
 && apt-get install -y --no-install-recommends wget \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 jaeger \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin jaeger \
 && mkdir -p /etc/jaeger \
 && chmod 1777 /tmp
COPY --from=build /out/jaeger /usr/local/bin/jaeger
COPY --chown=0:0 deploy/docker/jaeger.yaml /etc/jaeger/config.yaml
USER 10001:10001
EXPOSE 4318 16686
ENTRYPOINT ["/usr/local/bin/jaeger"]
CMD ["--config", "/etc/jaeger/config.yaml"]
