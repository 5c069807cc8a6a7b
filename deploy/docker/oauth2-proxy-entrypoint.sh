#!/bin/sh
# Render oauth2-proxy/oauth2-proxy.cfg.template, then run oauth2-proxy with it.
#
# Only ${O2P_*} names are substituted (like the nginx image's NGINX_ENVSUBST_FILTER=^EDGE_), so a
# literal "$" elsewhere in the file survives. A name the template uses but the environment does not
# set stops the container with the list of missing names: an empty issuer or redirect URL would
# otherwise give a proxy that starts and fails every sign-in. Secrets never pass through here:
# oauth2-proxy reads OAUTH2_PROXY_CLIENT_SECRET / OAUTH2_PROXY_COOKIE_SECRET from its environment.
set -eu

template=${O2P_TEMPLATE:-/etc/oauth2-proxy/oauth2-proxy.cfg.template}
config=${O2P_CONFIG:-/tmp/oauth2-proxy.cfg}
binary=${O2P_BINARY:-/usr/local/bin/oauth2-proxy}

names=$(grep -o '\${O2P_[A-Z0-9_]*}' "$template" | sort -u | sed 's/^\${\(.*\)}$/\1/')
missing=""
shell_format=""
for name in $names; do
    # ${!name} is not POSIX; eval reads the variable whose name we just took from the template,
    # which grep limited to [A-Z0-9_] so nothing else can be evaluated.
    eval "isset=\${$name+yes}"
    if [ "${isset:-}" != "yes" ]; then
        missing="$missing $name"
    fi
    shell_format="$shell_format \${$name}"
done
if [ -n "$missing" ]; then
    echo "oauth2-proxy: refusing to start; these variables are not set:$missing" >&2
    echo "  (see the header of oauth2-proxy.cfg.template for what each one means)" >&2
    exit 2
fi

umask 077
envsubst "$shell_format" < "$template" > "$config"
exec "$binary" --config="$config" "$@"
