"""Abuse at the broker (short): other devices keep being served; full figures: abuse_bench.py."""

from __future__ import annotations

import pytest

from benchmarks.abuse_bench import run

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
def test_other_devices_keep_being_served_during_abuse(broker: str) -> None:
    figures = run(broker, short=True)
    assert "200 got CONNACK" in figures["connections"], figures["connections"]
    for name in ("flood", "connections", "slow_loris"):
        after = figures[f"probe after {name}"]
        assert " 0 unacked" in after and "acked, p50" in after, after
        during = figures[f"probe {name}"]
        p99_ms = float(during.split("p99 ")[1].split(" ms")[0])
        assert p99_ms < 5000, during
