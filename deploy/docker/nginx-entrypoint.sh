#!/bin/sh
# Render the edge's configuration, then run nginx: every $NGINX_ENVSUBST_TEMPLATE_DIR/*.template is
# rendered into $NGINX_ENVSUBST_OUTPUT_DIR with envsubst, substituting only the defined variables
# whose names match $NGINX_ENVSUBST_FILTER (^EDGE_), so nginx's own $variables survive. This is the
# template step of the official nginx image's entrypoint (20-envsubst-on-templates.sh), which Debian's
# nginx package does not have.
set -eu
filter=${NGINX_ENVSUBST_FILTER:-}
defined_envs=$(printf '${%s} ' $(awk "END { for (name in ENVIRON) { print ( name ~ /${filter}/ ) ? name : \"\" } }" < /dev/null))
for template in "$NGINX_ENVSUBST_TEMPLATE_DIR"/*.template; do
    output="$NGINX_ENVSUBST_OUTPUT_DIR/$(basename "$template" .template)"
    envsubst "$defined_envs" < "$template" > "$output"
done
exec "$@"
