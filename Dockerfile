# syntax=docker/dockerfile:1
# llm-gateway as a sidecar or a shared service (README "Operating it").
#   config:     /etc/gateway/gateway.toml, or wherever $GATEWAY_CONFIG points (mount your own over either)
#   recordings: /data, a volume (the default config keeps .gateway/recordings.db and .gateway/state.db there)
#   signals:    exec-form entry point, so SIGTERM reaches the gateway itself, which drains for shutdown_grace_seconds
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# hnswlib (and llama-cpp-python with EXTRAS=local) compile from source: the compilers stay in this stage
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
# CMAKE_ARGS: llama.cpp built for a portable x86-64 baseline, not the build host's CPU (a native AVX-512/AMX build
# of llama-cpp-python 0.3.36 crashes in llama_decode on other CPUs, and did on this one: README)
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CMAKE_ARGS="-DGGML_NATIVE=OFF" \
    PATH=/opt/gateway/bin:$PATH
RUN python -m venv /opt/gateway
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY adapters ./adapters
COPY policies ./policies
COPY recordings ./recordings
# The README's install commands, word for word (tests/test_dockerfile.py holds them together; CI runs the same).
RUN pip install --no-cache-dir .
# "local" adds llama.cpp for the local model: docker build --build-arg EXTRAS=local .
ARG EXTRAS=""
RUN if [ -n "$EXTRAS" ]; then pip install --no-cache-dir ".[$EXTRAS]"; fi

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin gateway \
 && mkdir -p /etc/gateway /data \
 && chown gateway:gateway /data
COPY --from=build /opt/gateway /opt/gateway
COPY gateway.toml /etc/gateway/gateway.toml
ENV PATH=/opt/gateway/bin:$PATH \
    GATEWAY_CONFIG=/etc/gateway/gateway.toml \
    PYTHONUNBUFFERED=1
# numeric, so Kubernetes runAsNonRoot can verify it without reading /etc/passwd
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# the port the config says ([server] port of $GATEWAY_CONFIG, ${VAR} expanded), not a hardcoded one
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; from llm_gateway.config.settings import load_settings; port = load_settings().server.port; sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status != 200)"]
# arguments after the image name are added: docker run IMAGE --record-mode replay
ENTRYPOINT ["gateway", "serve", "--host", "0.0.0.0"]
