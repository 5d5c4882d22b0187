# One image for the API and the worker (the command differs).
FROM node:24-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
COPY tsconfig.json tsconfig.build.json ./
COPY engine engine
COPY backends backends
COPY cli cli
COPY workflows workflows
COPY activities activities
COPY api api
COPY db db
COPY scripts scripts
COPY bench bench
COPY worker.ts ./
COPY bin bin
RUN npm ci && npm prune --omit=dev

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production CAIRN_DATA_DIR=/data
COPY --from=build /app /app
VOLUME /data
EXPOSE 8080
CMD ["node", "dist/api/server.js"]
