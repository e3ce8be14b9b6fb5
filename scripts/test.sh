#!/usr/bin/env bash
# The project's test command: bootstrap, then pytest with real services (Mosquitto, Kafka,
# PostgreSQL) started on demand by tests/conftest.py via tools/devstack/.
# Usage: scripts/test.sh [pytest args…]   (default: -q)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh

export CIVICPULSE_DEVSTACK_DIR="${TMPDIR:-/tmp}/civicpulse-test-$$"
mkdir -p "$CIVICPULSE_DEVSTACK_DIR"
chmod 755 "$CIVICPULSE_DEVSTACK_DIR"

pids_of_leftovers() {
    find "$CIVICPULSE_DEVSTACK_DIR" -name pids -type f -exec cat {} + 2>/dev/null || true
}

cleanup() {
    # Whatever a devstack work dir still lists in its pids file is a leftover (Service.stop()
    # removes its pid): SIGTERM its process group (each service runs in its own session),
    # wait up to 10 s, then SIGKILL. PostgreSQL's children leave the group, but exit on their
    # own once the postmaster is gone.
    local pid left i
    for pid in $(pids_of_leftovers); do
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for i in $(seq 1 40); do
        left=""
        for pid in $(pids_of_leftovers); do
            if kill -0 "$pid" 2>/dev/null; then left="$left $pid"; fi
        done
        [ -z "$left" ] && break
        sleep 0.25
    done
    for pid in $(pids_of_leftovers); do
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -z "${CIVICPULSE_KEEP_DEVSTACK:-}" ]; then
        rm -rf "$CIVICPULSE_DEVSTACK_DIR"
    fi
}
trap cleanup EXIT

if [ "$#" -eq 0 ]; then
    set -- -q
fi
rc=0
if [ -t 0 ]; then
    # Interactive: pytest in the foreground (Ctrl-C reaches it, --pdb works); its session
    # teardown stops the services, the EXIT trap catches anything left.
    trap 'exit 130' INT
    trap 'exit 143' TERM
    .venv/bin/python -m pytest "$@" || rc=$?
else
    # Non-interactive (CI): run pytest as a child we can signal, so a SIGTERM/SIGINT to this
    # script ends pytest at once and the EXIT trap then kills the services it started.
    .venv/bin/python -m pytest "$@" </dev/null &
    pytest_pid=$!
    on_signal() {
        kill -TERM "$pytest_pid" 2>/dev/null || true
        wait "$pytest_pid" 2>/dev/null || true
        exit "$1"
    }
    trap 'on_signal 130' INT
    trap 'on_signal 143' TERM
    wait "$pytest_pid" || rc=$?
fi
exit "$rc"
