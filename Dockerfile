# ie serve in a container: the model is mounted, not baked in (models are large and change apart
# from the code).
#
#   docker build -t ie .
#   docker run --rm -p 8080:8080 -v "$PWD/models/tl:/models/model:ro" -e IE_API_KEY=change-me-please ie
#
# Then: curl -s localhost:8080/health, and any OpenAI client with base URL http://localhost:8080/v1.
# Arguments after the image name replace the default ones: `docker run … ie /models/model --threads 4`.

FROM node:20-slim AS build
# The C++ addon (@ie/kernels) is compiled by its build (node-gyp): a compiler, make and python3.
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
RUN npm install -g pnpm@10.34.9
WORKDIR /app
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml turbo.json tsconfig.base.json tsup.shared.ts biome.json ./
COPY packages ./packages
COPY apps ./apps
COPY benchmarks/package.json ./benchmarks/package.json
COPY quant ./quant
# Build with every dependency, then keep only the production ones (the dist folders stay).
RUN pnpm install --frozen-lockfile \
 && pnpm turbo run build --filter=@ie/cli \
 && pnpm install --frozen-lockfile --prod --offline --config.confirmModulesPurge=false

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app /app
USER node
EXPOSE 8080
# Liveness: the process answers; readiness (the model is loaded) is /health's 200 — see deploy/k8s.yaml.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s \
  CMD node -e "fetch('http://127.0.0.1:8080/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# In a container the server must listen beyond loopback; set IE_API_KEY (a secret) so that only
# your clients can use it. SIGTERM (docker stop, a rolling update) drains streams, then exits 0.
ENTRYPOINT ["node", "/app/apps/ie/dist/cli.js", "serve"]
CMD ["/models/model", "--host", "0.0.0.0", "--port", "8080"]
