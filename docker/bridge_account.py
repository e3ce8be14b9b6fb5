"""Register the bridge's ingest service account with the secret from the environment.

``civicpulse accounts add NAME --role ingest`` makes a random secret and prints it once; in
the compose stack the bridge's secret is ``MQTT_BRIDGE_PASSWORD`` from ``.env`` (which
``CIVICPULSE_MQTT_URL`` also carries), and the CLI has no way to set a given one. So
docker/registry-sync.sh runs this at start: it makes the registry agree with the environment.
The account ``MQTT_BRIDGE_USERNAME`` (role ingest) is added with that secret, or given it if
it has another (``.env`` changed, or someone ran ``civicpulse accounts rotate``), hashed as the
registry hashes every secret (``storage.registry_store.hashed``: argon2 and Mosquitto's
``$7$``), under the registry's lock. Nothing is written when the secret already matches.
Refuses (exit 1, one line) a name taken by a device or by an account of another role.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import psycopg

from civicpulse.settings import Settings
from sensors.topics import SENSOR_ID_PATTERN
from storage import registry_store as reg
from storage.connection import StoreUnavailable, connect
from trust import RegistryError, check_broker_hash

ROLE = "ingest"


def ensure_account(database_url: str, name: str, secret: str) -> str:
    """Make ``name`` an ingest account whose secret is ``secret``: "added", "updated" or
    "unchanged". :class:`RegistryError` if the registry cannot have it."""
    if SENSOR_ID_PATTERN.fullmatch(name) is None:
        raise RegistryError(f"account name {name!r} must match {SENSOR_ID_PATTERN.pattern}")
    if not secret:
        raise RegistryError(f"the secret of account {name!r} is empty")
    with connect(database_url) as conn, conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (reg.REGISTRY_LOCK,))
        cur.execute("SELECT 1 FROM devices WHERE sensor_id = %s", (name,))
        if cur.fetchone() is not None:
            raise RegistryError(f"{name!r} is a device's sensor id: the bridge needs its own name")
        cur.execute(
            "SELECT role, secret_hash, broker_hash FROM service_accounts WHERE name = %s"
            " FOR UPDATE",
            (name,),
        )
        row = cur.fetchone()
        if row is None:
            cur.execute(
                "INSERT INTO service_accounts (name, role, secret_hash, broker_hash)"
                " VALUES (%s, %s, %s, %s)",
                (name, ROLE, *reg.hashed(secret)),
            )
            return "added"
        role, secret_hash, broker_hash = row
        if role != ROLE:
            raise RegistryError(
                f"service account {name!r} has role {role}, not {ROLE}: give the bridge"
                " another MQTT_BRIDGE_USERNAME"
            )
        if (
            broker_hash is not None
            and check_broker_hash(broker_hash, secret)
            and reg.verify_secret(secret_hash, secret)
        ):
            return "unchanged"
        cur.execute(
            "UPDATE service_accounts SET secret_hash = %s, broker_hash = %s WHERE name = %s",
            (*reg.hashed(secret), name),
        )
        return "updated"


def main(environ: Mapping[str, str]) -> int:
    name = environ.get("MQTT_BRIDGE_USERNAME", "")
    secret = environ.get("MQTT_BRIDGE_PASSWORD", "")
    if not name or not secret:
        print("bridge_account: set MQTT_BRIDGE_USERNAME and MQTT_BRIDGE_PASSWORD", file=sys.stderr)
        return 1
    url = Settings.load(dict(environ)).database_url
    try:
        outcome = ensure_account(url, name, secret)
    except (RegistryError, StoreUnavailable) as exc:
        print(f"bridge_account: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:  # the migrations not applied yet, say: one line
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"bridge_account: {type(exc).__name__}: {first}", file=sys.stderr)
        return 1
    message = {
        "added": f"registered the ingest account {name} with MQTT_BRIDGE_PASSWORD",
        "updated": f"the ingest account {name} has a new secret: MQTT_BRIDGE_PASSWORD",
        "unchanged": f"the ingest account {name} is registered with MQTT_BRIDGE_PASSWORD",
    }[outcome]
    print(f"bridge_account: {message}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(os.environ))
