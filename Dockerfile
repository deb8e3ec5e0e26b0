# The CNC-FSM Core server image: `csdp serve` with the server and [otel] extras.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CSDP_VAR_DIR=/var/lib/csdp

WORKDIR /opt/csdp
COPY pyproject.toml README.md ./
COPY shared_schema ./shared_schema
COPY server ./server
COPY client_sdk ./client_sdk
COPY simulators ./simulators
RUN pip install '.[server,otel]' \
    && useradd --system --home-dir /var/lib/csdp --create-home csdp

USER csdp
EXPOSE 8080
CMD ["csdp", "serve", "--host", "0.0.0.0", "--port", "8080"]
