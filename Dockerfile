# civicpulse image: the `civicpulse` command (ingest bridge, Faust workers, migrations, simulator).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system civicpulse \
    && useradd --system --gid civicpulse --home-dir /srv/civicpulse --create-home civicpulse \
    && install -d -o civicpulse -g civicpulse /var/lib/civicpulse

WORKDIR /src
COPY pyproject.toml README.md ./
COPY civicpulse ./civicpulse
COPY sensors ./sensors
COPY ingest ./ingest
COPY stream_processors ./stream_processors
COPY dashboards ./dashboards
COPY sql ./sql
RUN pip install . && rm -rf /src

COPY docker/healthcheck.py /opt/civicpulse/healthcheck.py

# Faust keeps its local state (<app id>-data) in the working directory.
WORKDIR /srv/civicpulse
USER civicpulse
CMD ["civicpulse", "--help"]
