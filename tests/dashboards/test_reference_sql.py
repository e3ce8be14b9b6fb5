"""The dashboards' SQL reference functions agree with the pure core's data files."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from rules import daqi
from rules.carbon import load_factors
from sensors.catalogue import KINDS
from tests.dashboards.seed import Seeded

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def conn(seeded: Seeded) -> Iterator[psycopg.Connection]:
    with psycopg.connect(seeded.url) as connection:
        yield connection


def test_daqi_index_matches_the_core_at_every_band_boundary(conn: psycopg.Connection) -> None:
    cases = []
    for metric in daqi.POLLUTANTS:
        for x in range(0, 1200):
            for value in (x - 0.5, x - 0.5000001, x - 0.4999999, float(x)):
                if value >= 0:
                    cases.append((metric, value))
    rows = conn.execute(
        "SELECT dash_daqi_index(m, v) FROM unnest(%s::text[], %s::float8[]) AS t (m, v)",
        ([m for m, _ in cases], [v for _, v in cases]),
    ).fetchall()
    wrong = [
        (m, v, got, daqi.index_for(m, v))
        for (m, v), (got,) in zip(cases, rows, strict=True)
        if got != daqi.index_for(m, v)
    ]
    assert wrong == []


def test_daqi_bands_and_windows(conn: psycopg.Connection) -> None:
    for index in range(1, 11):
        (band,) = conn.execute("SELECT dash_daqi_band(%s)", (index,)).fetchone()
        assert band == daqi.band_for(index)
    hours = dict(
        conn.execute(
            "SELECT m, extract(epoch FROM dash_daqi_window(m)) / 3600 FROM unnest(%s::text[]) m",
            (list(daqi.POLLUTANTS),),
        ).fetchall()
    )
    assert hours == {"pm2_5": 24, "pm10": 24, "no2": 1, "o3": 8, "so2": 0.25}


def test_grid_factors_match_the_versioned_factor_file(conn: psycopg.Connection) -> None:
    table = load_factors()
    first, last = min(table.years), max(table.years)
    for year in range(first - 1, last + 3):
        rows = conn.execute("SELECT * FROM dash_grid_factors(%s)", (year,)).fetchall()
        usable = [y for y in table.years if y <= year]
        if not usable:
            assert rows == []
            continue
        factors = table.years[max(usable)]
        assert rows == [(factors.year, factors.generation, factors.td_losses)]


def test_expected_intervals_match_the_catalogue(conn: psycopg.Connection) -> None:
    for name, kind in KINDS.items():
        (seconds,) = conn.execute("SELECT dash_expected_interval_s(%s)", (name,)).fetchone()
        assert seconds == kind.expected_interval_s


def test_catalogue_metrics_match_the_catalogue(conn: psycopg.Connection) -> None:
    (metrics,) = conn.execute("SELECT dash_catalogue_metrics()").fetchone()
    assert set(metrics) == {m for kind in KINDS.values() for m in kind.metrics}
