"""``civicpulse dashboards`` export, push (to a local stand-in of Grafana's API), grant, check."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import typer
from typer.testing import CliRunner

import dashboards
from civicpulse.cli.dashboards import register
from tests.dashboards.seed import Seeded

app = typer.Typer()
register(app)
runner = CliRunner()


def test_export_writes_the_committed_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dashboards", "export", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{uid}.json" for uid in dashboards.BUILDERS)
    for name in written:
        assert (tmp_path / name).read_text() == (dashboards.JSON_DIR / name).read_text()


class FakeGrafana(BaseHTTPRequestHandler):
    """Grafana's HTTP API as far as push uses it (Grafana itself cannot run here)."""

    calls: ClassVar[list[tuple[str, str, str, Any]]] = []
    folders: ClassVar[set[str]] = set()
    datasources: ClassVar[set[str]] = set()

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.calls.append((self.command, self.path, self.headers.get("Authorization", ""), body))
        return body

    def do_GET(self) -> None:
        self._record()
        uid = self.path.rsplit("/", 1)[-1]
        known = self.folders if "/folders/" in self.path else self.datasources
        self._reply(200, {"uid": uid}) if uid in known else self._reply(404, {"message": "nf"})

    def do_POST(self) -> None:
        body = self._record()
        if self.path == "/api/folders":
            self.folders.add(body["uid"])
        elif self.path == "/api/datasources":
            self.datasources.add(body["uid"])
        self._reply(200, {"status": "success", "uid": (body or {}).get("uid", "")})

    def do_PUT(self) -> None:
        self._record()
        self._reply(200, {"message": "updated"})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def grafana() -> Iterator[str]:
    FakeGrafana.calls, FakeGrafana.folders, FakeGrafana.datasources = [], set(), set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGrafana)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_push_creates_folder_datasource_and_every_dashboard(grafana: str) -> None:
    args = [
        "dashboards",
        "push",
        "--grafana-url",
        grafana,
        "--token",
        "glsa_test",
        "--db-host",
        "db.internal:5432",
        "--db-password",
        "s3cret",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    calls = FakeGrafana.calls
    assert all(auth == "Bearer glsa_test" for _, _, auth, _ in calls)
    posts = {path: body for method, path, _, body in calls if method == "POST"}
    assert posts["/api/folders"]["uid"] == "civicpulse"
    source = posts["/api/datasources"]
    assert (source["uid"], source["user"]) == ("civicpulse-pg", "civicpulse_reader")
    assert source["secureJsonData"] == {"password": "s3cret"}
    pushed = [body for method, path, _, body in calls if path == "/api/dashboards/db"]
    assert [b["dashboard"]["uid"] for b in pushed] == list(dashboards.BUILDERS)
    assert all(b["overwrite"] and b["folderUid"] == "civicpulse" for b in pushed)
    assert pushed[0]["dashboard"] == dashboards.render(pushed[0]["dashboard"]["uid"])
    again = runner.invoke(app, args)  # second time: folder exists, datasource is updated
    assert again.exit_code == 0, again.output
    assert [m for m, p, _, _ in FakeGrafana.calls if p == "/api/datasources/uid/civicpulse-pg"][
        -1
    ] == "PUT"


def test_push_fails_with_one_line_when_grafana_is_unreachable() -> None:
    result = runner.invoke(
        app, ["dashboards", "push", "--grafana-url", "http://127.0.0.1:9", "--token", "x"]
    )
    assert result.exit_code == 1
    assert "check --grafana-url" in result.output


@pytest.mark.integration
def test_grant_reader_gives_a_read_only_login_and_check_passes(seeded: Seeded) -> None:
    result = runner.invoke(
        app,
        ["dashboards", "grant-reader", "--database-url", seeded.url, "--password", "reader-secret"],
    )
    assert result.exit_code == 0, result.output
    parts = urlsplit(seeded.url)
    netloc = f"civicpulse_reader:reader-secret@{parts.hostname}:{parts.port}"
    reader_url = urlunsplit(parts._replace(netloc=netloc))
    with psycopg.connect(reader_url) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TEMP TABLE scratch (x int)")
    check = runner.invoke(
        app, ["dashboards", "check", "--database-url", seeded.url, "--hours", "30"]
    )
    assert check.exit_code == 0, check.output
    assert "FAIL" not in check.output and check.output.count("ok  ") > 30


@pytest.mark.integration
def test_locations_import_upserts_positions_and_rejects_bad_rows(
    fresh_db: str, tmp_path: Path
) -> None:
    from storage import migrate

    migrate(fresh_db)
    good = tmp_path / "assets.csv"
    good.write_text(
        "sensor_id,latitude,longitude,name\naq-1,57.15,-2.09,Union St\n"
        "bin-2,55.95,-3.19,Princes St\n"
    )
    args = ["dashboards", "locations", str(good), "--database-url", fresh_db]
    assert runner.invoke(app, args).exit_code == 0
    good.write_text("sensor_id,latitude,longitude\naq-1,57.2,-2.1\n")
    assert runner.invoke(app, args).exit_code == 0
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute(
            "SELECT sensor_id, latitude, longitude FROM sensor_locations ORDER BY 1"
        ).fetchall()
    assert rows == [("aq-1", 57.2, -2.1), ("bin-2", 55.95, -3.19)]
    bad = tmp_path / "bad.csv"
    bad.write_text("sensor_id,latitude,longitude\naq-9,north,-2\n")
    result = runner.invoke(app, ["dashboards", "locations", str(bad), "--database-url", fresh_db])
    assert result.exit_code == 1 and "line 2" in result.output
    bad.write_text("sensor_id,latitude,longitude\naq-9,40.0,-2\n")  # not in the UK
    result = runner.invoke(app, ["dashboards", "locations", str(bad), "--database-url", fresh_db])
    assert result.exit_code == 1 and "check" in result.output.lower()
