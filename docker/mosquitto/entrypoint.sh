#!/bin/sh
# Mosquitto with the device registry's password file and ACL, reloaded when they change.
#
# The registry-sync service (docker/registry-sync.sh) runs `civicpulse devices sync` and
# writes passwd + acl into the mosquitto-auth volume, mounted here read-only
# (MOSQUITTO_REGISTRY_DIR). This script waits for the first sync, installs a copy in
# MOSQUITTO_AUTH_DIR (the paths mosquitto.conf names, owned by the mosquitto user the broker
# drops to), starts the broker, then compares the shared files with the installed copy every
# MOSQUITTO_RELOAD_CHECK_S seconds: when they changed it installs the new copy and sends the
# broker SIGHUP, which reloads both files and disconnects clients whose login is gone. So a
# device added, disabled or rotated in the registry takes effect within about
# REGISTRY_SYNC_INTERVAL_S + MOSQUITTO_RELOAD_CHECK_S seconds, and a restart starts from the
# registry, never from the environment.
#
# Why the broker's own container sends the signal: the sync runs in the civicpulse image
# (it needs the registry), and SIGHUP cannot cross containers unless they share a pid
# namespace (`pid: "service:mosquitto"`), which would also tie the sync container's life to
# the broker's and need the same user id to signal it. A watched file keeps the signal in
# here, and a registry that is down only means the broker keeps its last good files.
# `docker compose kill -s HUP mosquitto` also reloads (the signal is passed on).
#
# The simulator (compose profile sim) publishes a whole simulated fleet over one connection,
# which no registered device may: when MQTT_DEVICE_PASSWORD is set, MQTT_DEVICE_USERNAME is
# added with write on civicpulse/# (never read). Leave it empty unless you run the simulator.
set -u

: "${MQTT_BRIDGE_USERNAME:?set MQTT_BRIDGE_USERNAME (the bridge's ingest service account)}"
REGISTRY_DIR="${MOSQUITTO_REGISTRY_DIR:-/civicpulse/registry}"
AUTH_DIR="${MOSQUITTO_AUTH_DIR:-/mosquitto/auth}"
CONF="${MOSQUITTO_CONF:-/mosquitto/config/mosquitto.conf}"
CHECK_S="${MOSQUITTO_RELOAD_CHECK_S:-5}"
WAIT_S="${MOSQUITTO_SYNC_WAIT_S:-300}"
SIM_USER="${MQTT_DEVICE_USERNAME:-}"
SIM_PASSWORD="${MQTT_DEVICE_PASSWORD:-}"

say() { echo "mosquitto-entrypoint: $*" >&2; }

if [ -n "$SIM_PASSWORD" ]; then
    if [ -z "$SIM_USER" ] || [ "$SIM_USER" = "$MQTT_BRIDGE_USERNAME" ]; then
        say "MQTT_DEVICE_USERNAME must be set and differ from MQTT_BRIDGE_USERNAME"
        exit 2
    fi
fi

synced() { [ -s "$REGISTRY_DIR/passwd" ] && [ -s "$REGISTRY_DIR/acl" ]; }
checksum() { cat "$1/passwd" "$1/acl" 2>/dev/null | sha256sum; }
has_user() { awk -F: -v u="$1" '$1 == u { found = 1 } END { exit !found }' "$2"; }

installed=""
# Copy the registry's files (plus the simulator's account) into AUTH_DIR; each installed
# file replaces the old by a rename, so the broker never reads half a file.
install_files() {
    new=$(mktemp -d "$AUTH_DIR/.new.XXXXXX") || return 1
    if ! cp "$REGISTRY_DIR/passwd" "$REGISTRY_DIR/acl" "$new/"; then
        rm -rf "$new"
        return 1
    fi
    copied=$(checksum "$new")
    if ! has_user "$MQTT_BRIDGE_USERNAME" "$new/passwd"; then
        say "warning: the bridge's account $MQTT_BRIDGE_USERNAME is not in the registry's" \
            "passwd yet (registry-sync registers it from MQTT_BRIDGE_*)"
    fi
    if [ -n "$SIM_PASSWORD" ]; then
        if has_user "$SIM_USER" "$new/passwd"; then
            say "warning: $SIM_USER (MQTT_DEVICE_USERNAME) is registered in the registry;" \
                "the simulator's account is left out"
        else
            mosquitto_passwd -c -b "$new/simulator" "$SIM_USER" "$SIM_PASSWORD" >/dev/null &&
                cat "$new/simulator" >>"$new/passwd" &&
                printf '\n# The simulator (compose profile sim, MQTT_DEVICE_* in .env): %s\nuser %s\ntopic write civicpulse/#\n' \
                    "not from the registry" "$SIM_USER" >>"$new/acl" || {
                rm -rf "$new"
                return 1
            }
            rm -f "$new/simulator"
        fi
    fi
    if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
        chown -R mosquitto:mosquitto "$AUTH_DIR"
    fi
    mv -f "$new/passwd" "$AUTH_DIR/passwd" && mv -f "$new/acl" "$AUTH_DIR/acl"
    rm -rf "$new"
    installed=$copied
}

umask 077
mkdir -p "$AUTH_DIR"
waited=0
while ! synced; do
    if [ "$waited" -ge "$WAIT_S" ]; then
        say "no passwd and acl in $REGISTRY_DIR after ${WAIT_S}s: is registry-sync running?" \
            "(docker compose logs registry-sync)"
        exit 1
    fi
    [ "$waited" = 0 ] && say "waiting for registry-sync to write passwd and acl in $REGISTRY_DIR"
    sleep 1
    waited=$((waited + 1))
done
install_files || { say "cannot install the registry's files from $REGISTRY_DIR"; exit 1; }

mosquitto -c "$CONF" &
pid=$!
stopping=""
sleeper=""
trap 'stopping=1; kill -TERM "$pid" 2>/dev/null; [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null' TERM INT
trap 'kill -HUP "$pid" 2>/dev/null' HUP
say "mosquitto started (pid $pid): it reloads when the registry's files change (checked every ${CHECK_S}s)"

while [ -z "$stopping" ] && kill -0 "$pid" 2>/dev/null; do
    sleep "$CHECK_S" &
    sleeper=$!
    wait "$sleeper" 2>/dev/null
    sleeper=""
    [ -z "$stopping" ] || break
    if synced && [ "$(checksum "$REGISTRY_DIR")" != "$installed" ]; then
        if install_files; then
            kill -HUP "$pid" 2>/dev/null && say "the registry changed: passwd and acl reloaded"
        else
            say "cannot install the registry's new files; keeping the current ones"
        fi
    fi
done
status=0
wait "$pid" || status=$?
exit "$status"
