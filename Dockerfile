# One image for the API and the worker (the command differs).
FROM node:24-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
COPY tsconfig.json tsconfig.build.json ./
COPY engine engine
COPY backends backends
COPY policy policy
COPY cli cli
COPY workflows workflows
COPY activities activities
COPY api api
COPY db db
COPY scripts scripts
COPY web web
COPY bench bench
COPY worker.ts ./
COPY bin bin
RUN npm ci && npm prune --omit=dev

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production CAIRN_DATA_DIR=/data
COPY --from=build /app /app
# The API and the workers run as the image's unprivileged user (uid 1000), owning only
# their data and the volumes' mount points. Sources mounted for backup must be readable
# by it; give the worker service `user: root` only if it must back up other users' files
# or restore owners (CAIRN_RESTORE_OWNERS).
RUN mkdir -p /data /backups /restores /sources && chown node:node /data /backups /restores
USER node
VOLUME /data
EXPOSE 8080
CMD ["node", "dist/api/server.js"]
