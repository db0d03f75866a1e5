# syntax=docker/dockerfile:1
# llm-gateway as a sidecar: config at /etc/gateway/gateway.toml (or $GATEWAY_CONFIG), recordings on /data.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md gateway.toml ./
COPY gateway ./gateway
COPY adapters ./adapters
COPY policies ./policies
COPY recordings ./recordings
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 gateway && mkdir -p /etc/gateway /data && chown gateway /data
COPY --from=build /install /usr/local
COPY gateway.toml /etc/gateway/gateway.toml
ENV GATEWAY_CONFIG=/etc/gateway/gateway.toml
USER gateway
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["gateway", "serve", "--host", "0.0.0.0"]
