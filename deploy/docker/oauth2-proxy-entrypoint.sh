#!/bin/sh
# Render oauth2-proxy/oauth2-proxy.cfg.template (the core options) and
# oauth2-proxy/oauth2-proxy.alpha.yaml.template (the provider, headers, servers and upstream), then
# run oauth2-proxy with both (--config and --alpha-config).
#
# Only ${O2P_*} names are substituted (like the nginx image's NGINX_ENVSUBST_FILTER=^EDGE_), so a
# literal "$" elsewhere in the files survives. A name either template uses but the environment does
# not set stops the container with the list of missing names: an empty issuer or redirect URL would
# otherwise give a proxy that starts and fails every sign-in. Secrets never pass through here:
# oauth2-proxy reads OAUTH2_PROXY_COOKIE_SECRET from its environment, and substitutes
# OAUTH2_PROXY_CLIENT_SECRET (and OAUTH2_PROXY_METRICS_ADDRESS) into the alpha file itself as it
# loads it, so neither rendered file holds a secret.
set -eu

template=${O2P_TEMPLATE:-/etc/oauth2-proxy/oauth2-proxy.cfg.template}
config=${O2P_CONFIG:-/tmp/oauth2-proxy.cfg}
alpha_template=${O2P_ALPHA_TEMPLATE:-/etc/oauth2-proxy/oauth2-proxy.alpha.yaml.template}
alpha_config=${O2P_ALPHA_CONFIG:-/tmp/oauth2-proxy.alpha.yaml}
binary=${O2P_BINARY:-/usr/local/bin/oauth2-proxy}

names=$(cat "$template" "$alpha_template" | grep -o '\${O2P_[A-Z0-9_]*}' | sort -u | sed 's/^\${\(.*\)}$/\1/')
missing=""
shell_format=""
for name in $names; do
    # ${!name} is not POSIX; eval reads the variable whose name we just took from the templates,
    # which grep limited to [A-Z0-9_] so nothing else can be evaluated.
    eval "isset=\${$name+yes}"
    if [ "${isset:-}" != "yes" ]; then
        missing="$missing $name"
    fi
    shell_format="$shell_format \${$name}"
done
if [ -n "$missing" ]; then
    echo "oauth2-proxy: refusing to start; these variables are not set:$missing" >&2
    echo "  (see the headers of oauth2-proxy.cfg.template and oauth2-proxy.alpha.yaml.template" \
        "for what each one means)" >&2
    exit 2
fi

umask 077
envsubst "$shell_format" < "$template" > "$config"
envsubst "$shell_format" < "$alpha_template" > "$alpha_config"
exec "$binary" --config="$config" --alpha-config="$alpha_config" "$@"
