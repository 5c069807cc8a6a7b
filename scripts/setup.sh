#!/usr/bin/env bash
# One-time (and idempotent) set-up for `make run` and `make test` on a fresh Debian machine:
# system packages, the pinned oauth2-proxy binary, the Python virtual environment and the SPA build.
# Each step is skipped when its result is already in place, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# --- Debian packages --------------------------------------------------------------------------------
need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-venv)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  # policy-rc.d keeps the packages from starting system-wide services: the stack starts its own.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- oauth2-proxy, the real binary, at the version pinned in OAUTH2_PROXY_VERSION --------------------
version=$(tr -d ' \n' < OAUTH2_PROXY_VERSION)
bin_dir="$root/.cache/bin"
o2p="$bin_dir/oauth2-proxy-$version"
if [ ! -x "$o2p" ]; then
  command -v go >/dev/null 2>&1 || die "Go is needed to build oauth2-proxy $version: install Go 1.24 or newer and run again."
  log "building oauth2-proxy $version from its Go module (about two minutes)"
  module=github.com/oauth2-proxy/oauth2-proxy/v7
  modcache=$(go env GOMODCACHE)
  # The module proxy serves this exact version but not the module's version list, and `go install
  # mod@version` asks for that list to look up deprecation notices, failing outright. Downloading the
  # pinned version first puts a list of it in the module cache; offering the cache as the first proxy
  # then answers that lookup, while every dependency still comes from the module proxy, checked
  # against the checksum database as usual.
  go mod download -x "$module@$version" >/dev/null 2>&1 || go mod download "$module@$version"
  tmp_bin=$(mktemp -d)
  GOBIN="$tmp_bin" GOFLAGS=-mod=mod GOPROXY="file://$modcache/cache/download,$(go env GOPROXY)" \
    go install -trimpath -ldflags "-X github.com/oauth2-proxy/oauth2-proxy/v7/pkg/version.VERSION=$version" \
    "$module@$version"
  mkdir -p "$bin_dir"
  mv "$tmp_bin/oauth2-proxy" "$o2p"
  rmdir "$tmp_bin"
fi
ln -sfn "oauth2-proxy-$version" "$bin_dir/oauth2-proxy"

# --- Docker Compose CLI and newman: checking compose.yaml and running the Postman collection ---------
# (Test tools. Compose is the real CLI built from its Go module at an exact version, so
# `docker-compose config` validates compose.yaml on machines without Docker; newman is the npm
# package pinned in postman/package-lock.json; wget and envsubst serve the compose services the tests
# start as plain processes.)
compose_version=v5.5.1
compose_bin="$bin_dir/docker-compose-$compose_version"
if [ ! -x "$compose_bin" ]; then
  command -v go >/dev/null 2>&1 || die "Go is needed to build Docker Compose $compose_version: install Go 1.26.3 or newer and run again."
  log "building Docker Compose $compose_version from its Go module (about a minute and a half)"
  compose_module=github.com/docker/compose/v5
  # `go install module@version` refuses a module whose go.mod has exclude or replace directives, as
  # Compose's does; building inside the downloaded module (read-only in the module cache, its go.sum
  # included) uses them as the project's own build does.
  compose_src=$(go mod download -json "$compose_module@$compose_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$compose_src" ] && [ -d "$compose_src" ] || die "could not download $compose_module@$compose_version"
  mkdir -p "$bin_dir"
  (cd "$compose_src" && CGO_ENABLED=0 go build -buildvcs=false -trimpath \
    -ldflags "-s -w -X $compose_module/internal.Version=$compose_version" -o "$compose_bin.tmp" ./cmd)
  mv "$compose_bin.tmp" "$compose_bin"
fi
ln -sfn "docker-compose-$compose_version" "$bin_dir/docker-compose"

# The services of compose.yaml run as plain processes in a test (tests/compose_model): their health
# checks use wget, and the oauth2-proxy and nginx entrypoints envsubst, as in their images.
tools_needed=()
command -v wget >/dev/null 2>&1 || tools_needed+=(wget)
command -v envsubst >/dev/null 2>&1 || tools_needed+=(gettext-base)
command -v nsenter >/dev/null 2>&1 || tools_needed+=(util-linux)
if [ ${#tools_needed[@]} -gt 0 ]; then
  log "installing Debian packages: ${tools_needed[*]}"
  tools_sudo=()
  [ "$(id -u)" -eq 0 ] || tools_sudo=(sudo)
  "${tools_sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${tools_sudo[@]}" apt-get install -y -qq --no-install-recommends "${tools_needed[@]}" >/dev/null
fi

newman_stamp=postman/node_modules/.installed-$(sha256sum postman/package-lock.json | cut -c1-16)
if [ ! -f "$newman_stamp" ]; then
  log "installing newman (postman/package-lock.json)"
  (cd postman && npm ci --no-audit --no-fund --loglevel=error)
  rm -f postman/node_modules/.installed-*
  touch "$newman_stamp"
fi
# --- end of Docker Compose CLI and newman -----------------------------------------------------------

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
log "ready: oauth2-proxy $version, $(nginx -v 2>&1 | sed 's/.*\///'), redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $(.venv/bin/python --version)"
