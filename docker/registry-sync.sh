#!/bin/sh
# The registry-sync service: Mosquitto's password file and ACL kept in step with the registry.
#   1. Registers the bridge's ingest service account MQTT_BRIDGE_USERNAME with the secret
#      MQTT_BRIDGE_PASSWORD (bridge_account.py: `civicpulse accounts add` cannot take a
#      given secret), so the bridge logs in with what CIVICPULSE_MQTT_URL carries.
#   2. Every REGISTRY_SYNC_INTERVAL_S seconds runs `civicpulse devices sync --out
#      REGISTRY_SYNC_DIR`: passwd and acl, each replaced by an atomic rename, from the
#      registry as it is (a device writes only its own topic, accounts only read; disabled
#      devices are left out; no pattern rules). The directory is the mosquitto-auth volume,
#      which the mosquitto container mounts read-only: its entrypoint notices the change and
#      reloads the broker (docker/mosquitto/entrypoint.sh says why the signal is sent there).
# The files are rewritten on every successful pass, so their age is this loop's heartbeat
# (healthcheck.py registry). The sync's summary is logged when the files change or a pass
# fails; a failed pass leaves the last files in place, so Mosquitto carries on with them.
set -u

OUT="${REGISTRY_SYNC_DIR:-/var/lib/civicpulse-broker}"
INTERVAL="${REGISTRY_SYNC_INTERVAL_S:-10}"
HERE=$(dirname "$0")

python3 "$HERE/bridge_account.py" || exit 1

last=""
while :; do
    if summary=$(civicpulse devices sync --out "$OUT" 2>&1); then
        now=$(cat "$OUT/passwd" "$OUT/acl" | sha256sum)
        if [ "$now" != "$last" ]; then
            printf 'registry-sync: %s\n' "$summary" >&2
            last=$now
        fi
    else
        printf 'registry-sync: %s\n' "$summary" >&2
        echo "registry-sync: sync failed; Mosquitto keeps its last files; retrying in ${INTERVAL}s" >&2
        last=""
    fi
    sleep "$INTERVAL"
done
