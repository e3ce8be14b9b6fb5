#!/usr/bin/env bash
# Installs the public page's map library (Leaflet) and the API docs' Swagger UI (versions pinned
# in tools/npm/package.json) from npm into .cache/npm-vendor and copies their built dist files
# and licences into api/opendata/static/vendor/{leaflet,swagger-ui}/, which are committed: the
# API serves them from the package, with no CDN and no npm at run time. Idempotent; re-run
# after changing a pin.
# `--check`: exit 1 when the committed copy differs from the pinned package (CI).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
CACHE="$ROOT/.cache/npm-vendor"
DEST="$ROOT/api/opendata/static/vendor/leaflet"
log() { printf '[vendor] %s\n' "$*" >&2; }

want="$(sha256sum tools/npm/package.json | cut -d' ' -f1)"
if [ "$(cat "$CACHE/.complete" 2>/dev/null || true)" != "$want" ]; then
    log "installing tools/npm/package.json (npm) into .cache/npm-vendor"
    rm -rf "$CACHE"
    mkdir -p "$CACHE"
    cp tools/npm/package.json "$CACHE/package.json"
    if ! npm install --prefix "$CACHE" --no-audit --no-fund --ignore-scripts \
            >"$CACHE/npm.log" 2>&1 </dev/null; then
        tail -n 40 "$CACHE/npm.log" >&2
        log "npm install failed (full log: $CACHE/npm.log)"; exit 1
    fi
    echo "$want" > "$CACHE/.complete"
fi

PKG="$CACHE/node_modules/leaflet"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/images"
cp "$PKG/dist/leaflet.js" "$PKG/dist/leaflet.css" "$PKG/LICENSE" "$STAGE/"
cp "$PKG/dist/images/"*.png "$STAGE/images/"
node -e 'process.stdout.write(require(process.argv[1]).version + "\n")' "$PKG/package.json" \
    > "$STAGE/VERSION"

SWAGGER="$CACHE/node_modules/swagger-ui-dist"
SWAGGER_DEST="$ROOT/api/opendata/static/vendor/swagger-ui"
SWAGGER_STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE" "$SWAGGER_STAGE"' EXIT
cp "$SWAGGER/swagger-ui-bundle.js" "$SWAGGER/swagger-ui.css" "$SWAGGER/LICENSE" "$SWAGGER_STAGE/"
node -e 'process.stdout.write(require(process.argv[1]).version + "\n")' "$SWAGGER/package.json" \
    > "$SWAGGER_STAGE/VERSION"

if [ "${1:-}" = "--check" ]; then
    diff -r "$STAGE" "$DEST" >/dev/null || { log "$DEST differs from the pinned Leaflet"; exit 1; }
    diff -r "$SWAGGER_STAGE" "$SWAGGER_DEST" >/dev/null \
        || { log "$SWAGGER_DEST differs from the pinned Swagger UI"; exit 1; }
    exit 0
fi
for pair in "$STAGE:$DEST" "$SWAGGER_STAGE:$SWAGGER_DEST"; do
    rm -rf "${pair#*:}"
    mkdir -p "$(dirname "${pair#*:}")"
    cp -r "${pair%%:*}" "${pair#*:}"
    chmod -R u+rwX,go+rX "${pair#*:}"
done
log "Leaflet $(cat "$DEST/VERSION") and Swagger UI $(cat "$SWAGGER_DEST/VERSION") copied into api/opendata/static/vendor"
