#!/bin/sh
# The template step of the official nginx image's entrypoint (docker-entrypoint.d/
# 20-envsubst-on-templates.sh), reduced to what deploy/docker/nginx.Dockerfile uses: every
# $NGINX_ENVSUBST_TEMPLATE_DIR/*.template is rendered into $NGINX_ENVSUBST_OUTPUT_DIR with envsubst,
# substituting only the defined variables whose names match $NGINX_ENVSUBST_FILTER. Then the command.
set -eu
filter=${NGINX_ENVSUBST_FILTER:-}
defined_envs=$(printf '${%s} ' $(awk "END { for (name in ENVIRON) { print ( name ~ /${filter}/ ) ? name : \"\" } }" < /dev/null))
for template in "$NGINX_ENVSUBST_TEMPLATE_DIR"/*.template; do
    output="$NGINX_ENVSUBST_OUTPUT_DIR/$(basename "$template" .template)"
    envsubst "$defined_envs" < "$template" > "$output"
done
exec "$@"
