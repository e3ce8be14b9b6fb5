"""The folders' allowed arrows (docs/architecture.md), checked on every import in the code."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Folder → what it may import besides itself (a dotted prefix names one module).
ALLOWED: dict[str, set[str]] = {
    "sensors": set(),
    "trust": {"sensors"},
    "rules": {"sensors"},
    "simulator": {"sensors"},
    "ingest": {"sensors", "trust"},
    "storage": {"sensors", "rules", "trust"},
    "stream_processors": {"sensors", "rules", "storage"},
    "embedded": {
        "sensors",
        "trust",
        "rules",
        "storage",
        "stream_processors",
        "ingest.mqtt_session",
    },
    "dashboards": {"sensors", "rules"},
    "api": {"sensors", "rules", "storage", "trust"},
    "civicpulse": {
        "api",
        "sensors",
        "trust",
        "rules",
        "simulator",
        "ingest",
        "storage",
        "stream_processors",
        "embedded",
        "dashboards",
    },
}
PACKAGES = set(ALLOWED) | {"tools", "benchmarks", "tests"}
PURE = ("sensors", "trust", "rules")
IO_LIBRARIES = {
    "aiokafka", "amqtt", "asyncio", "click", "faust", "grafana_client", "http", "kafka",
    "matplotlib", "mode", "paho", "pgserver", "psycopg", "psycopg_pool", "requests", "rich",
    "socket", "sqlite3", "ssl", "subprocess", "typer", "urllib.request",
}  # fmt: skip


def imports(folder: str) -> Iterator[tuple[str, str]]:
    """(file, imported module) for every import anywhere in a folder's modules."""
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield str(path.relative_to(ROOT)), alias.name
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield str(path.relative_to(ROOT)), node.module
                for alias in node.names:  # `from ingest import bridge` imports ingest.bridge
                    yield str(path.relative_to(ROOT)), f"{node.module}.{alias.name}"


def allowed(folder: str, module: str) -> bool:
    top = module.split(".")[0]
    if top == folder or top not in PACKAGES:
        return True
    return any(module == a or module.startswith(a + ".") or (
        "." not in a and top == a) for a in ALLOWED[folder])  # fmt: skip


def test_every_folder_imports_only_what_its_layer_may() -> None:
    bad = [
        f"{file} imports {module}"
        for folder in ALLOWED
        for file, module in imports(folder)
        if not allowed(folder, module)
        and module.split(".")[0] in PACKAGES
        # `from ingest import mqtt_session` also yields the bare package name: judge the module
        and not (module in ALLOWED and any(a.startswith(module + ".") for a in ALLOWED[folder]))
    ]
    assert bad == []


def test_pure_folders_import_no_network_database_or_cli_library() -> None:
    bad = [
        f"{file} imports {module}"
        for folder in PURE
        for file, module in imports(folder)
        if any(module == lib or module.startswith(lib + ".") for lib in IO_LIBRARIES)
    ]
    assert bad == []


def test_nothing_outside_the_cli_imports_the_cli() -> None:
    bad = [
        f"{file} imports {module}"
        for folder in ALLOWED
        for file, module in imports(folder)
        if module.startswith("civicpulse.cli") and not file.startswith("civicpulse/cli/")
    ]
    assert bad == []


def test_the_folders_import_graph_has_no_cycle() -> None:
    graph: dict[str, set[str]] = {folder: set() for folder in ALLOWED}
    for folder in ALLOWED:
        for _file, module in imports(folder):
            top = module.split(".")[0]
            if top in ALLOWED and top != folder:
                graph[folder].add(top)
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"import cycle: {' → '.join((*path, node))}"
        if node not in done:
            for nxt in sorted(graph[node]):
                visit(nxt, (*path, node))
            done.add(node)

    for folder in sorted(graph):
        visit(folder, ())


def test_the_checks_see_a_forbidden_arrow() -> None:
    # the checker itself: a made-up import of each forbidden kind is caught
    assert not allowed("stream_processors", "ingest.bridge")
    assert not allowed("sensors", "rules.daqi")
    assert not allowed("embedded", "ingest.bridge")
    assert allowed("embedded", "ingest.mqtt_session")
    assert not allowed("storage", "stream_processors.pipeline")
