"""The public page in a real headless Chromium (Debian's package), driven over CDP."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.api.opendata_fixtures import (  # noqa: F401  (fixtures)
    OpenDataSeed,
    opendata_db,
    opendata_seed,
    opendata_server,
)

pytestmark = pytest.mark.integration


class Cdp:
    """A minimal Chrome DevTools Protocol client: commands by id, events into a list."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            future = self.pending.pop(msg.get("id", -1), None)
            if future is not None:
                future.set_result(msg)
            elif "method" in msg:
                self.events.append(msg)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        n = next(self.ids)
        self.pending[n] = asyncio.get_running_loop().create_future()
        await self.ws.send(json.dumps({"id": n, "method": method, "params": params}))
        reply = await asyncio.wait_for(self.pending[n], 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply["result"]
        return result

    async def evaluate(self, expression: str) -> Any:
        reply = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply["result"].get("value")


def _launch(profile: Path) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("Debian's chromium is not installed (scripts/bootstrap.sh installs it)")
    args = [
        exe,
        "--headless=new",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",  # the browser itself calls nobody
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
    ]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text().strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("chromium did not start its DevTools endpoint")
        time.sleep(0.05)
    return proc, int(port_file.read_text().split()[0])


async def _visit(port: int, url: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
        target = next(t for t in json.load(r) if t["type"] == "page")
    async with connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
        cdp = Cdp(ws)
        for domain in ("Runtime", "Log", "Network", "Page"):
            await cdp.send(f"{domain}.enable")
        await cdp.send("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while await cdp.evaluate("document.body && document.body.dataset.state") not in (
            "ready",
            "error",
        ):
            assert time.monotonic() < deadline, "the page never finished loading the sensors"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # late errors (images, styles) get reported
        dom = await cdp.evaluate(
            """JSON.stringify({
              state: document.body.dataset.state,
              summary: document.getElementById('summary').textContent,
              rows: [...document.querySelectorAll('#sensors tbody tr')].map(tr => ({
                id: tr.dataset.sensorId, text: tr.textContent,
                band: tr.querySelector('[data-band]').dataset.band})),
              markers: [...document.querySelectorAll('path.sensor-marker')].map(p => ({
                id: p.getAttribute('data-sensor-id'), cls: p.getAttribute('class')})),
              links: [...document.querySelectorAll('#datasets a')].map(a => a.href),
            })"""
        )
        cdp.reader.cancel()
        return json.loads(dom), cdp.events


def test_public_page_shows_the_seeded_sensors_without_console_errors(
    opendata_server: str,  # noqa: F811
    opendata_seed: OpenDataSeed,  # noqa: F811
    tmp_path: Path,
) -> None:
    proc, port = _launch(tmp_path / "profile")
    try:
        dom, events = asyncio.run(_visit(port, opendata_server + "/"))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    errors = [
        e["params"]
        for e in events
        if e["method"] == "Runtime.exceptionThrown"
        or (
            e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert")
        )
        or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert errors == []
    requested = [
        e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"
    ]
    assert requested and all(
        u.startswith(opendata_server + "/") or u.startswith("data:") for u in requested
    ), requested
    assert dom["state"] == "ready"
    seeded = {s.sensor_id for s in opendata_seed.sensors}
    assert {r["id"] for r in dom["rows"]} == seeded
    located = {s.sensor_id for s in opendata_seed.sensors if s.location is not None}
    assert {m["id"] for m in dom["markers"]} == located
    bands = httpx.get(opendata_server + "/api/v1/sensors.geojson", timeout=30).json()
    want = {f["id"]: (f["properties"]["daqi"] or {}).get("band") or "" for f in bands["features"]}
    assert {r["id"]: r["band"] for r in dom["rows"]} == want
    css = {"Low": "band-low", "Moderate": "band-moderate", "High": "band-high"}
    for m in dom["markers"]:
        assert css.get(want[m["id"]], "band-none") in m["cls"].split()
    assert f"{len(seeded)} sensors" in dom["summary"]
    for path in ("/api/v1/sensors.geojson", "/v1.1", "/docs", "/api/v1/aggregates?"):
        assert any(link.startswith(opendata_server + path) for link in dom["links"])


async def _visit_docs(port: int, url: str) -> tuple[list[str], list[dict[str, Any]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
        target = next(t for t in json.load(r) if t["type"] == "page")
    async with connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
        cdp = Cdp(ws)
        for domain in ("Runtime", "Log", "Network", "Page"):
            await cdp.send(f"{domain}.enable")
        await cdp.send("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        paths: list[str] = []
        while not paths:
            assert time.monotonic() < deadline, "Swagger UI never listed the operations"
            await asyncio.sleep(0.2)
            found = await cdp.evaluate(
                "JSON.stringify([...document.querySelectorAll('.opblock-summary-path')]"
                ".map(e => e.textContent))"
            )
            paths = json.loads(found or "[]")
        cdp.reader.cancel()
        return paths, cdp.events


def test_api_docs_render_from_the_package_with_no_cdn(
    opendata_server: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    proc, port = _launch(tmp_path / "profile-docs")
    try:
        paths, events = asyncio.run(_visit_docs(port, opendata_server + "/docs"))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert any("/api/v1/aggregates" in p for p in paths), paths
    requested = [
        e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"
    ]
    assert requested and all(
        u.startswith(opendata_server + "/") or u.startswith("data:") for u in requested
    ), requested
