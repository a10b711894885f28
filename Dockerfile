# syntax=docker/dockerfile:1
# One image for every part of Togather: the SEL app (`serve`), the edge proxy
# (`proxy`) and the admin/deploy commands. Build with `make docker-build`, which
# passes VERSION, GIT_COMMIT and BUILD_DATE from git and the clock.

# Node.js 24 LTS (22 is in maintenance, 20 is end of life).
ARG NODE_IMAGE=node:24-alpine

# --- builder: install every dependency, compile, then drop the dev ones -------
FROM ${NODE_IMAGE} AS builder
WORKDIR /app

# Dependencies first, so source edits do not invalidate the npm ci layer.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY common ./common
COPY cli ./cli
COPY server ./server
COPY proxy ./proxy
COPY deploy ./deploy

# Empty values fall back to the package version, `unknown` and the build time
# (scripts/write-build-info.mjs); dist/build-info.json then fixes them, so the
# running container reports what was built, not what its environment says.
ARG VERSION
ARG GIT_COMMIT
ARG BUILD_DATE
RUN VERSION="${VERSION}" GIT_COMMIT="${GIT_COMMIT}" BUILD_DATE="${BUILD_DATE}" npm run build \
 && npm prune --omit=dev \
 && npm cache clean --force

# --- runtime: Node LTS on Alpine, non-root, only what runs ----------------------
FROM ${NODE_IMAGE} AS runtime

# pg_dump for `togather snapshot` (16 matches the PostGIS 16 server of the
# compose stack); the official image's `node` user owns uid/gid 1000, which
# the togather user takes over.
RUN apk add --no-cache postgresql16-client \
 && deluser --remove-home node \
 && (delgroup node 2>/dev/null || true) \
 && addgroup -g 1000 togather \
 && adduser -u 1000 -G togather -h /app -s /sbin/nologin -D togather \
 && mkdir -p /app/data /app/snapshots /app/.togather /app/certs \
 && chown -R togather:togather /app

WORKDIR /app
# TOGATHER_COMMAND_FILE: /app/server records there whether this container
# runs `serve` or `proxy`, so the HEALTHCHECK below checks the right part.
ENV NODE_ENV=production \
    DATA_DIR=/app/data \
    SNAPSHOT_DIR=/app/snapshots \
    STATE_FILE=/app/.togather/proxy-state.json \
    CERT_DIR=/app/certs \
    TOGATHER_COMMAND_FILE=/tmp/togather-command

COPY --from=builder --chown=togather:togather /app/package.json ./package.json
COPY --from=builder --chown=togather:togather /app/node_modules ./node_modules
COPY --from=builder --chown=togather:togather /app/dist ./dist
# The SQL migrations (tsc compiles TypeScript only) go next to the compiled
# migrator, dist/server/migrations, the first place it looks.
COPY --from=builder --chown=togather:togather /app/server/migrations ./dist/server/migrations
COPY --chown=root:root --chmod=0755 deploy/docker/server.sh /app/server

USER togather:togather

# 8080: the app (`serve`) and 9464 its internal /metrics listener (publish it
# on a private interface only, if at all); 80: the proxy's public listener
# (`proxy`), and 443 its TLS listener when a certificate source is set; the
# admin API (9080) stays on loopback unless ADMIN_HOST says.
EXPOSE 8080 9464 80 443

# The app's /health in a `serve` container, the proxy's /healthz on its admin
# port in a `proxy` container (see TOGATHER_COMMAND_FILE above).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["/app/server", "healthcheck"]

ENTRYPOINT ["/app/server"]
CMD ["serve"]
