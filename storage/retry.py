"""One retry loop for every database write an engine must not give up on."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from storage.connection import StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


def retry_while_unavailable(
    action: Callable[[], T],
    *,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    max_backoff_s: float = 10.0,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """Run ``action`` until the database answers: back off 0.2 s, doubling to ``max_backoff_s``.

    Only :class:`StoreUnavailable` (an outage) is retried; any other error propagates. The
    injected ``sleep`` may raise to give up (the embedded engine's stops when it shuts down).
    """
    delay = 0.2
    while True:
        try:
            return action()
        except StoreUnavailable as exc:
            if on_retry is not None:
                on_retry()
            log.warning(
                "database unavailable, holding %s and retrying in %.1fs: %s", what, delay, exc
            )
            sleep(delay)
            delay = min(delay * 2, max_backoff_s)
