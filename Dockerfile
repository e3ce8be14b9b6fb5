# civicpulse image: the `civicpulse` command (ingest bridge, Faust workers, migrations, registry,
# alert delivery, retention, simulator).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system civicpulse \
    && useradd --system --gid civicpulse --home-dir /srv/civicpulse --create-home civicpulse \
    && install -d -o civicpulse -g civicpulse /var/lib/civicpulse \
    && install -d -m 0700 -o civicpulse -g civicpulse /var/lib/civicpulse-broker

WORKDIR /src
COPY pyproject.toml README.md ./
# Every package pyproject.toml's [tool.setuptools.packages.find] includes (a test checks).
COPY civicpulse ./civicpulse
COPY sensors ./sensors
COPY trust ./trust
COPY rules ./rules
COPY simulator ./simulator
COPY ingest ./ingest
COPY storage ./storage
COPY stream_processors ./stream_processors
COPY embedded ./embedded
COPY dashboards ./dashboards
COPY api ./api
COPY sql ./sql
RUN pip install . && rm -rf /src

# Compose helpers: the healthcheck, the secrets check, the registry-sync loop and the bridge's
# account (docker-compose.yml). /var/lib/civicpulse-broker is where registry-sync writes
# Mosquitto's files: a new mosquitto-auth volume mounted there takes its owner and mode.
COPY docker/healthcheck.py docker/check-secrets.sh docker/registry-sync.sh docker/bridge_account.py /opt/civicpulse/

# Faust keeps its local state (<app id>-data) in the working directory.
WORKDIR /srv/civicpulse
USER civicpulse
CMD ["civicpulse", "--help"]
