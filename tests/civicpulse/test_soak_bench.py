"""``benchmarks/soak_embedded.py``: a short soak samples memory and stores every reading once."""

from __future__ import annotations

import pytest

from benchmarks.soak_embedded import SoakConfig, run

pytestmark = pytest.mark.integration


def test_a_short_soak_samples_memory_and_stores_every_acknowledged_reading_once() -> None:
    report = run(SoakConfig(minutes=0.25, sensors=40, rate=600.0, shape=6, clients=4, sample_s=1))
    n = report["readings"]
    assert n["sent"] > 1000
    assert n["acknowledged"] == n["sent"] == n["stored"] == n["distinct"]
    (minute,) = report["minutes"]
    assert minute["readings"] >= n["sent"]
    assert 0 < minute["puback_p50_ms"] <= minute["puback_p99_ms"]
    rss = report["engine_rss_mb"]
    assert 20 < rss["start"] <= rss["peak"] < 2000
    assert report["postgres_rss_mb_peak"] > 0
