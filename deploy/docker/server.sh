#!/bin/sh
# /app/server in the image: the togather CLI, so `docker run IMAGE serve`,
# `docker run --rm IMAGE version` and `docker run IMAGE proxy` work. exec
# makes node the process that receives SIGTERM from `docker stop`.
exec node /app/dist/cli/togather.js "$@"
