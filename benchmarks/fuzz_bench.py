"""Fuzz the front door: ≥100,000 generated messages and topics through route_message, parse_topic.

    python benchmarks/fuzz_bench.py --examples 100000

Prints how many messages and topics were generated, what they became (readings, dead letters by
reason, partial acceptances), and the time taken; exits 1 on the first property violation
(Hypothesis shrinks it and prints the failing example).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from benchmarks.chaos.fuzzing import (  # noqa: E402
    Tally,
    any_topics,
    check_message,
    check_topic,
    messages,
)


def run(n_messages: int, n_topics: int) -> Tally:
    tally = Tally()
    common = {
        "deadline": None,
        "database": None,
        "phases": [Phase.generate, Phase.shrink],
        "suppress_health_check": list(HealthCheck),
    }

    @settings(max_examples=n_messages, **common)  # type: ignore[arg-type]
    @given(messages())
    def fuzz_messages(message: tuple[str | bytes, bytes]) -> None:
        check_message(*message, tally)

    @settings(max_examples=n_topics, **common)  # type: ignore[arg-type]
    @given(any_topics)
    def fuzz_topics(topic: str) -> None:
        check_topic(topic, tally)

    fuzz_messages()
    fuzz_topics()
    return tally


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=100_000, help="messages + topics in all")
    args = p.parse_args(argv)
    n_topics = args.examples // 5
    started = time.perf_counter()
    try:
        tally = run(args.examples - n_topics, n_topics)
    except AssertionError as exc:
        print(f"PROPERTY VIOLATED: {exc}")
        return 1
    took = time.perf_counter() - started
    total = tally.messages + tally.topics
    print(f"generated {total} examples in {took:.1f}s ({total / took:,.0f}/s)")
    print(
        f"messages {tally.messages}: {tally.messages_with_readings} with readings"
        f" ({tally.accepted_readings} readings, each round-tripped), {tally.dead_letters} dead"
        f" letters ({tally.partial} partial acceptances), 0 exceptions, 0 internal_error"
    )
    print(
        "dead letters by reason: " + ", ".join(f"{r} {n}" for r, n in tally.reasons.most_common())
    )
    print(f"topics {tally.topics}: {tally.topics_parsed} parsed and rebuilt identically, the rest"
          " rejected as bad_topic/unknown_kind")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
