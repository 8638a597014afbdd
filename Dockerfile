# patchvet: multi-stage build; the service runs as the unprivileged `node` user.
#
#   docker build -t patchvet .
#   docker run -d --name patchvet \
#     -v /etc/patchvet:/etc/patchvet:ro -v patchvet-data:/var/lib/patchvet \
#     -e PATCHVET_SMTP_PASSWORD -e PATCHVET_IMAP_PASSWORD \
#     -e APP_ID -e PRIVATE_KEY -e WEBHOOK_SECRET \
#     -e OPENAI_API_KEY -e OPENAI_BASE_URL -e PATCHVET_LLM_MODEL patchvet
#
# The GitHub App (APP_ID, PRIVATE_KEY, WEBHOOK_SECRET, GHE_HOST) and the LLM pass (OPENAI_*,
# PATCHVET_LLM_*) are off unless their variables are set; both are optional.
#
# The working directory /var/lib/patchvet holds the default store (sqlite:./patchvet.db) and the
# outbox (./outbox); mount a volume there. /healthz is checked inside the container on
# 127.0.0.1:3000 (the default http.listen); set PATCHVET_HEALTHZ if patchvet.yml listens elsewhere.

# ---- build: compile TypeScript, then keep production dependencies only
FROM node:20-bookworm-slim AS build
# better-sqlite3 normally uses a prebuilt binary; the toolchain is the fallback when there is none.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
# `npm ci` runs the `prepare` script, which builds dist/.
RUN npm ci --no-audit --no-fund \
 && test -f dist/cli.js \
 && npm prune --omit=dev --no-audit --no-fund

# ---- runtime
FROM node:20-bookworm-slim
# git: the public-inbox source reads archives with it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /etc/patchvet /var/lib/patchvet \
 && chown node:node /var/lib/patchvet
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY rules ./rules
ENV NODE_ENV=production
USER node
WORKDIR /var/lib/patchvet
VOLUME ["/var/lib/patchvet"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.PATCHVET_HEALTHZ || 'http://127.0.0.1:3000/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Node handles SIGTERM itself (graceful stop, exit 0); `docker run --init` also reaps stray children.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/bin/patchvet"]
CMD ["serve", "--config", "/etc/patchvet/patchvet.yml"]
