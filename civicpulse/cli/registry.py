"""``civicpulse councils|devices|accounts``: the device registry (who may log in to the broker).

A secret is printed once, by the command that makes it (``devices add|rotate|import``,
``accounts add|rotate``), and never again: the database keeps only its hashes (argon2, and
Mosquitto's own ``$7$`` hash, which ``devices sync`` writes into Mosquitto's password file).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from civicpulse.cli.console import console, fail, say, with_store
from civicpulse.cli.options import Council, DatabaseUrl, JsonOutput
from sensors.catalogue import KINDS

T = TypeVar("T")

SensorId = Annotated[str, typer.Argument(help="The device's sensor id (its broker user name)")]
ONCE = "shown once: store it now, it cannot be shown again (rotate to get a new one)"


_say = say
_run = with_store


def _device_json(device: Any, secret: str | None = None) -> dict[str, Any]:
    row = {
        "sensor_id": device.sensor_id,
        "council": device.council,
        "kind": device.kind,
        "site": device.site,
        "enabled": device.enabled,
        "personal_data": device.personal_data,
    }
    return row if secret is None else {**row, "secret": secret}


def _devices_table(devices: list[Any]) -> Table:
    table = Table("sensor id", "council", "kind", "site", "enabled", "personal data")
    for d in devices:
        table.add_row(
            escape(d.sensor_id),
            d.council,
            d.kind,
            escape(d.site or ""),
            "yes" if d.enabled else "no",
            "yes" if d.personal_data else "no",
        )
    return table


# --- councils ---------------------------------------------------------------------------


def councils_add(
    slug: Annotated[str, typer.Argument(help="Council slug: its MQTT topic level, e.g. leeds")],
    name: Annotated[str, typer.Option("--name", help="Display name, e.g. 'Leeds City Council'")],
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Register a council (devices are registered under one)."""
    from storage import registry_store as db

    council = _run(database_url, lambda url: db.add_council(url, slug, name))
    if as_json:
        print(json.dumps({"slug": council.slug, "name": council.name}))
    else:
        _say(f"registered council {council.slug} ({council.name})")


def councils_list(database_url: DatabaseUrl = None, as_json: JsonOutput = False) -> None:
    """List the registered councils."""
    from storage import registry_store as db

    councils = _run(database_url, db.list_councils)
    if as_json:
        print(json.dumps([{"slug": c.slug, "name": c.name} for c in councils]))
        return
    table = Table("slug", "name")
    for c in councils:
        table.add_row(c.slug, escape(c.name))
    Console().print(table if councils else "no councils")


# --- devices ----------------------------------------------------------------------------


def devices_add(
    sensor_id: SensorId,
    council: Annotated[str, typer.Option("--council", help="The council it publishes for")],
    kind: Annotated[
        str, typer.Option("--kind", help=f"Kind of sensor: {', '.join(sorted(KINDS))}")
    ],
    site: Annotated[str | None, typer.Option("--site", help="Where it is installed")] = None,
    personal_data: Annotated[
        bool,
        typer.Option("--personal-data", help="Its readings are personal data (never shared raw)"),
    ] = False,
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Register a device and print its broker secret (once)."""
    from storage import registry_store as db
    from trust.registry import Device

    def work(url: str) -> tuple[Any, str]:
        device = Device(sensor_id, council, kind, site or None, True, personal_data)
        return device, db.add_device(url, device)

    device, secret = _run(database_url, work)
    if as_json:
        print(json.dumps(_device_json(device, secret)))
        return
    _say(
        f"registered device {device.sensor_id} ({device.council}, {device.kind});"
        f" it logs in as {device.sensor_id} with this secret, {ONCE}:"
    )
    print(secret)


def devices_list(
    council: Council = None,
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """List registered devices (never their secrets)."""
    from storage import registry_store as db

    devices = _run(database_url, lambda url: db.list_devices(url, council))
    if as_json:
        print(json.dumps([_device_json(d) for d in devices]))
        return
    Console().print(_devices_table(devices) if devices else "no devices")


def _switch(sensor_id: str, enabled: bool, database_url: str | None, as_json: bool) -> None:
    from storage import registry_store as db

    change = db.enable_device if enabled else db.disable_device
    device = _run(database_url, lambda url: change(url, sensor_id))
    if as_json:
        print(json.dumps(_device_json(device)))
    else:
        state = "enabled" if enabled else "disabled (it can no longer log in or publish)"
        _say(f"device {device.sensor_id} is {state}")


def devices_disable(
    sensor_id: SensorId, database_url: DatabaseUrl = None, as_json: JsonOutput = False
) -> None:
    """Disable a device: it stays registered but can no longer log in or publish."""
    _switch(sensor_id, False, database_url, as_json)


def devices_enable(
    sensor_id: SensorId, database_url: DatabaseUrl = None, as_json: JsonOutput = False
) -> None:
    """Enable a disabled device again (with its current secret)."""
    _switch(sensor_id, True, database_url, as_json)


def devices_rotate(
    sensor_id: SensorId, database_url: DatabaseUrl = None, as_json: JsonOutput = False
) -> None:
    """Give a device a new secret and print it (once); the old secret stops working."""
    from storage import registry_store as db

    secret = _run(database_url, lambda url: db.rotate_secret(url, sensor_id))
    if as_json:
        print(json.dumps({"sensor_id": sensor_id, "secret": secret}))
        return
    _say(f"new secret for device {sensor_id}, {ONCE}:")
    print(secret)


def devices_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with the header sensor_id,council,kind,site,personal_data"
            " (site and personal_data optional)",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Register every device of a CSV file, or none if any row is bad.

    Prints each new device's secret once, as CSV (sensor_id,secret) on stdout.
    """
    from storage import registry_store as db

    try:
        with file.open(encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(escape(f"cannot read {file}: {exc}")) from exc

    def work(url: str) -> list[tuple[Any, str]]:
        try:
            return db.import_devices(url, db.read_device_csv(text.splitlines(keepends=True)))
        except db.ImportRejected as exc:
            for problem in exc.problems:
                console.print(f"[bold red]error:[/] {escape(f'{file} {problem}')}", soft_wrap=True)
            n = len(exc.problems)
            raise fail(
                escape(f"{file}: {n} bad row{'s' if n > 1 else ''}, nothing was imported")
            ) from exc

    imported = _run(database_url, work)
    if as_json:
        print(json.dumps([_device_json(d, s) for d, s in imported]))
        return
    if not imported:
        _say(f"{file} has no devices: nothing to import")
        return
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["sensor_id", "secret"])
    for device, secret in imported:
        writer.writerow([device.sensor_id, secret])
    _say(f"imported {len(imported)} device(s); their secrets are above, {ONCE}")


# --- Mosquitto's files ------------------------------------------------------------------

FILE_MODE = 0o600  # both files: the password hashes, and the whole fleet's inventory


def _reload_target(value: str) -> int:
    """The process id in ``value`` (a number, or a pid file such as Mosquitto's pid_file)."""
    text = value.strip()
    if text.isascii() and text.isdigit():
        pid = int(text)
    else:
        try:
            content = Path(value).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            raise fail(escape(f"--reload-pid: cannot read the pid file {value}: {why}")) from exc
        if not (content.isascii() and content.isdigit()):
            raise fail(escape(f"--reload-pid: {value} does not hold a process id"))
        pid = int(content)
    if pid <= 0:  # 0 and -1 would signal process groups, never one broker
        raise fail(escape(f"--reload-pid: {pid} is not a process id"))
    comm = Path(f"/proc/{pid}/comm")
    if Path("/proc/self/comm").exists():  # Linux: make sure it is a mosquitto
        try:
            name = comm.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise fail(escape(f"--reload-pid: no process {pid} is running")) from None
        except OSError:
            name = "mosquitto"  # cannot tell: the signal itself will say
        if name != "mosquitto":
            raise fail(escape(f"--reload-pid: process {pid} is {name!r}, not mosquitto"))
    return pid


def _write_atomically(path: Path, text: str) -> None:
    """``text`` into ``path`` by a temporary file in the same directory and a rename, so
    Mosquitto never reads half a file. The new file is mode 0600 and keeps the owner and
    group of the file it replaces (Mosquitto may run as its own user)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            with contextlib.suppress(FileNotFoundError):
                old = path.stat()
                if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                    os.fchown(f.fileno(), old.st_uid, old.st_gid)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself on disk
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _names(names: Sequence[str], shown: int = 10) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def devices_sync(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            file_okay=False,
            help="Directory for Mosquitto's password file (passwd) and ACL (acl); made if missing",
        ),
    ],
    reload_pid: Annotated[
        str | None,
        typer.Option(
            "--reload-pid",
            help="Then send SIGHUP to this mosquitto so it reloads them: a pid, or a pid file",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Write Mosquitto's password file and ACL from the registry (and have it reload them).

    A device may publish only to its own topic, an account only read; disabled ones are out.
    """
    from storage import registry_store as db

    pid = None if reload_pid is None else _reload_target(reload_pid)
    files = _run(database_url, db.load_broker_files)
    passwd, acl = out / "passwd", out / "acl"
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_atomically(passwd, files.passwd)
        _write_atomically(acl, files.acl)
    except OSError as exc:
        raise fail(escape(f"cannot write Mosquitto's files in {out}: {exc}")) from exc
    if pid is not None:
        try:
            os.kill(pid, signal.SIGHUP)
        except OSError as exc:
            raise fail(
                escape(f"wrote {passwd} and {acl}, but could not signal process {pid}: {exc}")
            ) from exc
    if as_json:
        print(
            json.dumps(
                {
                    "passwd": str(passwd),
                    "acl": str(acl),
                    "devices": list(files.devices),
                    "accounts": list(files.accounts),
                    "disabled": list(files.disabled),
                    "without_hash": list(files.without_hash),
                    "bad_names": list(files.bad_names),
                    "reloaded_pid": pid,
                }
            )
        )
        return
    _say(
        f"wrote {passwd} and {acl}: {len(files.devices)} device(s),"
        f" {len(files.accounts)} service account(s)"
        + (f"; {len(files.disabled)} disabled device(s) left out" if files.disabled else "")
    )
    if files.without_hash:
        _say(
            f"warning: no Mosquitto hash (made before migration 039), so they cannot log in to"
            f" Mosquitto until given a new secret (devices rotate, accounts rotate):"
            f" {_names(files.without_hash)}"
        )
    if files.bad_names:
        _say(
            f"warning: a ':' cannot be in a Mosquitto user name, so these cannot log in:"
            f" {_names(files.bad_names)}"
        )
    if pid is not None:
        _say(f"sent SIGHUP to mosquitto (pid {pid}): it reloads both files")


# --- service accounts -------------------------------------------------------------------


def accounts_add(
    name: Annotated[str, typer.Argument(help="Account name (its broker user name)")],
    role: Annotated[str, typer.Option("--role", help="ingest (the bridge) or engine")],
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Register a service account (bridge or engine) and print its secret (once)."""
    from storage import registry_store as db
    from trust.registry import ServiceAccount, ServiceRole

    if role not in db.ROLES:
        raise fail(escape(f"--role must be one of {', '.join(db.ROLES)}, not {role!r}"))
    account = ServiceAccount(name, cast(ServiceRole, role))
    secret = _run(database_url, lambda url: db.add_service_account(url, account))
    if as_json:
        print(json.dumps({"name": name, "role": role, "secret": secret}))
        return
    _say(f"registered {role} account {name}; it logs in as {name} with this secret, {ONCE}:")
    print(secret)


def accounts_rotate(
    name: Annotated[str, typer.Argument(help="Account name (its broker user name)")],
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Give a service account a new secret and print it (once); the old one stops working."""
    from storage import registry_store as db

    secret = _run(database_url, lambda url: db.rotate_account_secret(url, name))
    if as_json:
        print(json.dumps({"name": name, "secret": secret}))
        return
    _say(f"new secret for service account {name}, {ONCE}:")
    print(secret)


def accounts_list(database_url: DatabaseUrl = None, as_json: JsonOutput = False) -> None:
    """List the service accounts (never their secrets)."""
    from storage import registry_store as db

    accounts = _run(database_url, db.list_service_accounts)
    if as_json:
        print(json.dumps([{"name": a.name, "role": a.role} for a in accounts]))
        return
    table = Table("name", "role")
    for a in accounts:
        table.add_row(escape(a.name), a.role)
    Console().print(table if accounts else "no service accounts")


def register(app: typer.Typer) -> None:
    """Add ``councils``, ``devices`` and ``accounts`` to the command line."""
    councils = typer.Typer(help="Councils: the registry's top level.", no_args_is_help=True)
    councils.command("add")(councils_add)
    councils.command("list")(councils_list)
    app.add_typer(councils, name="councils")
    devices = typer.Typer(
        help="Devices: register, list, disable, enable, rotate secrets, import a CSV, and sync"
        " Mosquitto's password file and ACL.",
        no_args_is_help=True,
    )
    devices.command("add")(devices_add)
    devices.command("list")(devices_list)
    devices.command("disable")(devices_disable)
    devices.command("enable")(devices_enable)
    devices.command("rotate")(devices_rotate)
    devices.command("import")(devices_import)
    devices.command("sync")(devices_sync)
    app.add_typer(devices, name="devices")
    accounts = typer.Typer(
        help="Service accounts: the bridge and engines that log in to the broker.",
        no_args_is_help=True,
    )
    accounts.command("add")(accounts_add)
    accounts.command("list")(accounts_list)
    accounts.command("rotate")(accounts_rotate)
    app.add_typer(accounts, name="accounts")
