#!/bin/sh
# The init job of docker-compose.yml: registers tenant $TENANT, its apps
# ($APPS, each described by apps/<app>.yaml) and its components, and writes
# each app's Envoy bootstrap to /bootstrap/<app>.yaml for its sidecar. It
# talks to the admin API at $BLOCKGATE_ADMIN_URL with $BLOCKGATE_ADMIN_TOKEN,
# and may run again: every step leaves what exists as it is or updates it.
set -eu
: "${TENANT:?}" "${APPS:?}" "${APP_PORT:?}" "${BLOCKGATE_ADMIN_URL:?}"
here=$(dirname "$0")

# Wait until a node behind the load balancer is ready (Postgres reachable,
# JetStream current).
tries=0
until wget -q -O /dev/null "$BLOCKGATE_ADMIN_URL/readyz"; do
  tries=$((tries + 1))
  if [ "$tries" -ge 120 ]; then
    echo "init: no gateway ready at $BLOCKGATE_ADMIN_URL after 2 minutes" >&2
    exit 1
  fi
  sleep 1
done

if ! blockgate tenant list | awk 'NR > 1 {print $1}' | grep -qx "$TENANT"; then
  blockgate tenant create "$TENANT"
fi
blockgate component apply --tenant "$TENANT" -f "$here/statestore.yaml"

for app in $APPS; do
  blockgate app apply --tenant "$TENANT" -f "$here/apps/$app.yaml"
  # A fresh join token each run; the sidecar's instance is named after its
  # app's one instance. The file holds the token (mode 0600): it belongs to
  # uid 101, the envoy user of the envoyproxy/envoy image.
  blockgate envoy bootstrap --tenant "$TENANT" --app "$app" --app-port "$APP_PORT" \
    --instance "$app-1" -o "/bootstrap/$app.yaml"
  chown 101:101 "/bootstrap/$app.yaml"
done
echo "init: tenant $TENANT with apps $APPS is ready"
