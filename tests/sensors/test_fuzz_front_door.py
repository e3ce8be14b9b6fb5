"""Fuzzing the front door: route_message, the codecs and the topic parser never crash."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from benchmarks.chaos.fuzzing import any_topics, check_message, check_topic, messages

FUZZ = settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


@FUZZ
@given(messages())
def test_route_message_never_raises_and_accepted_readings_round_trip(
    message: tuple[str | bytes, bytes],
) -> None:
    check_message(*message)


@FUZZ
@given(any_topics)
def test_parse_topic_accepts_only_what_topic_for_gives_back(topic: str) -> None:
    check_topic(topic)
