"""GroupCommitter on real PostgreSQL: messages share commits; none is released early."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from embedded import EngineStopped, GroupCommitter, NotStored
from sensors.intake import Routed, route_message
from sensors.validation import DEFAULT_LIMITS
from storage import DeadLetterStore, ReadingStore, migrate

pytestmark = pytest.mark.integration

START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)


def message(i: int, n: int = 10) -> tuple[str, bytes]:
    sensor = f"aq-g{i:04d}"
    readings = [
        {
            "metric": "no2",
            "value": float(k),
            "unit": "ug/m3",
            "time": (START + timedelta(seconds=k)).isoformat(),
        }
        for k in range(n)
    ]
    payload = {"v": 1, "sensor_id": sensor, "readings": readings}
    return f"civicpulse/bath/air_quality/{sensor}", json.dumps(payload).encode()


def committer(url: str, **kwargs: float) -> GroupCommitter:
    def route(topic: str, payload: bytes, at: datetime) -> Routed:
        return route_message(topic, payload, at, DEFAULT_LIMITS)

    return GroupCommitter(ReadingStore(url), DeadLetterStore(url), route, **kwargs)


def count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_concurrent_messages_share_batches_and_each_waits_for_its_commit(fresh_db: str) -> None:
    migrate(fresh_db)
    seen_on_release: list[int] = []

    async def main() -> GroupCommitter:
        c = committer(fresh_db, max_readings=1000, window_s=0.05)
        c.start()

        async def one(i: int) -> None:
            await c.submit(*message(i))
            if i % 50 == 0:  # released ⇒ already committed (ask the database from a thread)
                sql = f"SELECT count(*) FROM readings WHERE sensor_id = 'aq-g{i:04d}'"
                seen_on_release.append(await asyncio.to_thread(count, fresh_db, sql))

        await asyncio.gather(*(one(i) for i in range(300)))
        await c.stop()
        return c

    c = asyncio.run(main())
    assert count(fresh_db, "SELECT count(*) FROM readings") == 3000
    assert seen_on_release == [10] * 6
    assert c.stats.committed_messages == 300
    assert 3 <= c.stats.batches <= 10, c.stats  # 3000 readings, at most 1000 per commit


def test_dead_letters_are_committed_once_per_distinct_message(fresh_db: str) -> None:
    migrate(fresh_db)

    async def main() -> None:
        c = committer(fresh_db)
        c.start()
        topic = "civicpulse/bath/air_quality/aq-bad"
        await asyncio.gather(
            c.submit(topic, b"not json"), c.submit(topic, b"{]"), c.submit(*message(1))
        )
        await c.submit(topic, b"not json")  # a device's redelivery of the same bytes
        await c.stop()

    asyncio.run(main())
    assert count(fresh_db, "SELECT count(*) FROM dead_letters") == 2
    assert count(fresh_db, "SELECT count(*) FROM readings") == 10


def test_nothing_is_released_while_the_database_is_unreachable() -> None:
    url = "postgresql://postgres@127.0.0.1:9/nowhere?connect_timeout=1"

    async def main() -> None:
        c = committer(url, window_s=0.01)
        c.start()
        pending = asyncio.ensure_future(c.submit(*message(1)))
        await asyncio.sleep(1.5)
        assert not pending.done()
        await c.stop(timeout_s=0.5)
        with pytest.raises(EngineStopped):
            await pending
        with pytest.raises(EngineStopped):
            await c.submit(*message(2))

    asyncio.run(main())


def test_a_message_the_database_refuses_holds_up_only_itself(fresh_db: str) -> None:
    migrate(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:  # a rule only this message breaks
        conn.execute(
            "ALTER TABLE dead_letters ADD CONSTRAINT test_refuses"
            " CHECK (mqtt_topic NOT LIKE '%refused%')"
        )
    nul_topic = "civicpulse/bath/air_quality/aq-refused"

    async def main() -> list[BaseException | None]:
        c = committer(fresh_db, window_s=0.05)
        c.start()
        results = await asyncio.gather(
            c.submit(nul_topic, b"{}"),
            *(c.submit(*message(i)) for i in range(5)),
            return_exceptions=True,
        )
        await c.stop()
        return results

    results = asyncio.run(main())
    assert isinstance(results[0], NotStored)
    assert results[1:] == [None] * 5
    assert count(fresh_db, "SELECT count(*) FROM readings") == 50


def test_a_nul_in_a_topic_is_stored_escaped(fresh_db: str) -> None:
    migrate(fresh_db)
    nul_topic = "civicpulse/bath/air_quality/aq\x00nul"  # text columns cannot hold NUL

    async def main() -> None:
        c = committer(fresh_db, window_s=0.05)
        c.start()
        await c.submit(nul_topic, b"{}")
        await c.stop()

    asyncio.run(main())
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute("SELECT mqtt_topic, payload FROM dead_letters").fetchall()
    assert rows == [("civicpulse/bath/air_quality/aq\\x00nul", b"{}")]
