#!/bin/sh
# /app/server in the image: the togather CLI, so `docker run IMAGE serve`,
# `docker run --rm IMAGE version` and `docker run IMAGE proxy` work.
#
# A long-running command is recorded in $TOGATHER_COMMAND_FILE (the image sets
# it) so that the image's HEALTHCHECK, `/app/server healthcheck` in the same
# container, checks what this container runs: the proxy's /healthz for
# `proxy`, the app's /health otherwise. A file that cannot be written (a
# read-only /tmp) only leaves the health check on its default, the app.
case "${1:-}" in
  serve | proxy)
    if [ -n "${TOGATHER_COMMAND_FILE:-}" ]; then
      { printf '%s\n' "$1" > "$TOGATHER_COMMAND_FILE"; } 2>/dev/null || true
    fi
    ;;
esac
# exec makes node the process that receives SIGTERM from `docker stop`.
# The proxy starts with its node flags (PROXY_NODE_FLAGS in proxy/heap-tuning.ts:
# V8 reads them only from the command line or NODE_OPTIONS), unless NODE_OPTIONS
# sets the flag itself (on the command line it would override the operator's).
if [ "${1:-}" = proxy ]; then
  case " ${NODE_OPTIONS:-} " in
    *" --max-semi-space-size="*) ;;
    *) exec node --max-semi-space-size=32 /app/dist/cli/togather.js "$@" ;;
  esac
fi
exec node /app/dist/cli/togather.js "$@"
