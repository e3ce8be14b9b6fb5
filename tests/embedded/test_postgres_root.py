"""Embedded PostgreSQL started as root changes no permission outside its data dir (issue 21)."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from embedded.postgres import RUN_AS, _library_install, start_embedded_postgres

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),  # allowed: CI runs as root
]


def modes(*paths: Path) -> dict[str, tuple[int, int, int]]:
    """(mode, uid, gid) of each path and of every one of its ancestors up to ``/``."""
    out = {}
    for path in paths:
        for p in (path, *path.parents):
            st = p.stat()
            out[str(p)] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


@pytest.fixture
def base() -> Iterator[Path]:
    # Under /tmp, not tmp_path: the base's own mode is part of what is checked.
    path = Path(tempfile.mkdtemp(prefix="civicpulse-pgroot-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def works(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS probe (n int)")
        conn.execute("INSERT INTO probe VALUES (1)")
        count = conn.execute("SELECT count(*) FROM probe").fetchone()
        version = conn.execute("SHOW server_version").fetchone()
    assert count is not None and count[0] >= 1
    assert version is not None and version[0].startswith("16.")


def test_root_under_a_0700_parent_changes_nothing_outside_the_data_dir(base: Path) -> None:
    base.chmod(0o755)  # where the platform dir goes: like /var/lib
    parent = base / "private"
    parent.mkdir(mode=0o700)
    parent.chmod(0o700)
    data_dir = parent / "data"
    platform = base / "platform"
    watched = (parent, _library_install() / "bin" / "postgres")
    before = modes(*watched)

    pg = start_embedded_postgres(data_dir, platform_dir=platform)
    try:
        works(pg.url)
        assert modes(*watched) == before, "a permission outside the data dir changed"
        link = data_dir / "pgdata"
        assert link.is_symlink() and link.resolve().is_relative_to(platform)
        assert link.resolve().stat().st_uid == pwd.getpwnam(RUN_AS).pw_uid
        assert stat.S_IMODE(link.resolve().stat().st_mode) == 0o700
    finally:
        pg.stop()
    assert modes(*watched) == before

    again = start_embedded_postgres(data_dir, platform_dir=platform)  # the same cluster
    try:
        works(again.url)
        with psycopg.connect(again.url) as conn:
            row = conn.execute("SELECT count(*) FROM probe").fetchone()
        assert row is not None and row[0] == 2
    finally:
        again.stop()
    assert modes(*watched) == before


def test_root_with_a_reachable_data_dir_keeps_the_cluster_inside_it(base: Path) -> None:
    base.chmod(0o755)
    data_dir = base / "data"
    platform = base / "platform"
    before = modes(base)
    pg = start_embedded_postgres(data_dir, platform_dir=platform)
    try:
        works(pg.url)
        pgdata = data_dir / "pgdata"
        assert pgdata.is_dir() and not pgdata.is_symlink()
        assert pgdata.stat().st_uid == pwd.getpwnam(RUN_AS).pw_uid
    finally:
        pg.stop()
    assert modes(base) == before
    assert not (data_dir / "pgdata" / "postmaster.pid").exists(), "not stopped"


@pytest.mark.skipif(os.geteuid() != 0, reason="root only")  # allowed: CI runs as root
def test_binaries_copied_for_an_unreachable_venv_find_their_libraries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A venv under a 0700 directory (e.g. /root): the copy keeps the wheel's layout, so the
    binaries' relative RPATH still finds the bundled shared libraries."""
    import subprocess

    from embedded import postgres

    source = _library_install()
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    site = closed / "site-packages"
    shutil.copytree(source.parent, site / source.parent.name, symlinks=True)
    libs = source.parent.parent / f"{source.parent.name}.libs"
    shutil.copytree(libs, site / libs.name, symlinks=True)
    monkeypatch.setattr(
        postgres, "_library_install", lambda: site / source.parent.name / source.name
    )
    open_dir = Path(tempfile.mkdtemp(prefix="civicpulse-platform-"))
    open_dir.chmod(0o755)
    platform = open_dir / "platform"
    try:
        entry = postgres._dedicated_user()
        installed = postgres._reachable_install(entry, platform)
        assert platform in installed.parents
        done = subprocess.run(
            [str(installed / "bin" / "initdb"), "--version"],
            capture_output=True,
            text=True,
            check=False,
            **postgres._as(entry),
        )
        assert done.returncode == 0, done.stderr
        assert "initdb (PostgreSQL)" in done.stdout
    finally:
        shutil.rmtree(open_dir, ignore_errors=True)
