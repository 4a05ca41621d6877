# syntax=docker/dockerfile:1
#
# The Cattail image: `cattail serve` on a supported Node.js LTS, production dependencies only,
# running as a non-root user on a read-only root filesystem.
#
# Two stages: the build stage has the dev dependencies (TypeScript) and compiles dist/; the run
# stage installs production dependencies only and copies dist/ across. The exact commands of both
# stages are run outside Docker in CI by scripts/image/dry-run.ts (`npm run image:dry-run`; our
# machines have no Docker engine), from a clean copy of the files .dockerignore lets through.
#
# Node 24 is an LTS line (maintenance since October 2026, supported until April 2028); package.json's `engines` lists the lines the code is tested on.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` (the build) runs below, once the sources are in.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.lib.json ./
COPY proto ./proto
COPY src ./src
# The library and server only (tsconfig.lib.json): benchmarks and tests stay out of the image.
RUN npx --no-install tsc -p tsconfig.lib.json

FROM ${NODE_IMAGE} AS run
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="cattail" \
      org.opencontainers.image.description="Typha-style fan-out cache server for Kubernetes: one watcher per resource, versioned snapshots, deltas over WebSockets to node agents" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; --ignore-scripts skips `prepare` (dist/ comes from the build stage).
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force
COPY bin ./bin
COPY proto/PROTOCOL.md ./proto/PROTOCOL.md
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/dist/proto ./dist/proto
# The image's `node` user (uid 1000). Nothing is written at run time: the JSON logs go to stderr
# (stdout holds only the start-up banner), and the root filesystem can be mounted read-only.
USER 1000:1000
# 5473: agents (Typha's port); 9093: /metrics, /livez, /readyz, /liveness, /readiness.
EXPOSE 5473 9093
ENTRYPOINT ["node", "/app/bin/cattail.js", "serve"]
# Every address, IPv6 and IPv4 (an empty host; 0.0.0.0 would leave IPv6-only clusters unserved).
CMD ["--listen", ":5473", "--http-listen", ":9093"]
