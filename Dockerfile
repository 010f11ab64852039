# The OUP image: one image for the API, the ingesters and the import/tiling job
# (docker-compose.yml runs it with different commands).

# The browser packages the platform serves itself (CesiumJS for /viewer; Bootstrap,
# MapLibre GL JS and Swagger UI for the pages and /map): fetched at build time only.
FROM node:20-slim AS web
WORKDIR /app
COPY oup/viewer/package.json oup/viewer/package-lock.json oup/viewer/
COPY oup/web/package.json oup/web/package-lock.json oup/web/
RUN cd oup/viewer && npm ci --omit=dev && cd ../web && npm ci --omit=dev

FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 OUP_DATA_DIR=/data OUP_CATALOG_DIR=/app/collections
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY oup oup
COPY tilers tilers
COPY iot_ingest iot_ingest
COPY config config
COPY collections collections
# the documentation, which the API builds into /data/docs-site and serves at /docs/
COPY mkdocs.yml ./
COPY docs docs
COPY --from=web /app/oup/viewer/node_modules oup/viewer/node_modules
COPY --from=web /app/oup/web/node_modules oup/web/node_modules
# editable: OUP finds config/, collections/ and the browser packages beside its code
RUN pip install -e .
# the store's compiled loops (tiles, GeoJSON), into numba's cache beside them
RUN python -m oup.store.compiled
VOLUME /data
EXPOSE 5000
CMD ["oup", "serve", "--host", "0.0.0.0", "--port", "5000"]
