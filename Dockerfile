# The OUP image: one image for the API, the ingesters and the import/tiling job
# (docker-compose.yml runs it with different commands).
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
RUN pip install .
VOLUME /data
EXPOSE 5000
CMD ["oup", "serve", "--host", "0.0.0.0", "--port", "5000"]
