FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY register ./register
COPY fhir_adapters ./fhir_adapters
COPY auth ./auth
RUN pip install --no-cache-dir . && useradd --system --uid 10001 --home /data register \
    && mkdir -p /data && chown register /data
USER register
ENV REGISTER_DATA_DIR=/data REGISTER_HOST=0.0.0.0 REGISTER_PORT=8080
EXPOSE 8080
CMD ["careregister", "serve"]
