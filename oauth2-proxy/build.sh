#!/bin/sh
# Builds oauth2-proxy from its Go module at an exact version with every oauth2-proxy/patches/*.patch
# applied, in name order. The one recipe for the binary: scripts/setup.sh runs it for `make run` and
# the tests, deploy/docker/oauth2-proxy.Dockerfile for the image, so both ship the same code.
#
#   sh oauth2-proxy/build.sh VERSION SOURCE_DIR OUTPUT
#
# SOURCE_DIR is replaced by the module's source with the patches applied (the caller may keep it: the
# patched packages' own tests run there); OUTPUT is the binary. `go` must be at least the go
# directive of the module's go.mod, and `patch` must be installed.
#
# The binary reports the patches' names as semver build metadata, e.g.
# `oauth2-proxy v7.15.6+keep-sessions-on-store-errors (built with go1.26.8)` for --version, so a
# patched build is told apart from upstream's; with no patches left it reports the plain version.
set -eu
[ $# -eq 3 ] || { echo "usage: $0 VERSION SOURCE_DIR OUTPUT" >&2; exit 2; }
version=$1
# Both absolute: the build runs inside the source copy.
case $2 in /*) src=$2 ;; *) src=$(pwd)/$2 ;; esac
case $3 in /*) out=$3 ;; *) out=$(pwd)/$3 ;; esac
patches=$(cd "$(dirname "$0")/patches" 2>/dev/null && pwd) || patches=""
module=github.com/oauth2-proxy/oauth2-proxy/v7

# `go mod download` checks the module against the checksum database, as it does every dependency.
# The module cache is read-only, so the patches go into a writable copy.
download=$(GOFLAGS=-mod=mod go mod download -json "$module@$version") \
  || { echo "downloading $module@$version failed: $download" >&2; exit 1; }
pristine=$(printf '%s\n' "$download" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -f "$pristine/go.mod" ] || { echo "downloading $module@$version gave no source: $download" >&2; exit 1; }
rm -rf "$src"
mkdir -p "$(dirname "$src")" "$(dirname "$out")"
cp -r "$pristine" "$src"
chmod -R u+w "$src"

mark=""
for patch_file in "$patches"/*.patch; do
  [ -f "$patch_file" ] || continue
  # --forward --batch: a patch that does not apply (already applied, or written for another
  # version) fails the build instead of asking a question or reversing itself.
  patch -d "$src" -p1 --forward --batch --quiet < "$patch_file" \
    || { echo "$patch_file does not apply to $module@$version" >&2; exit 1; }
  name=$(basename "$patch_file" .patch)
  mark="$mark${mark:+.}$name"
done

# Inside the copy, so the module's own go.mod and go.sum (all checksums) pin every dependency.
# -buildvcs=false: the copy may sit inside another repository's work tree, which says nothing
# about this source.
(cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -buildvcs=false -trimpath \
  -ldflags "-s -w -X $module/pkg/version.VERSION=$version${mark:++$mark}" -o "$out" .)
