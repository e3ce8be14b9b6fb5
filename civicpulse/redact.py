"""Passwords out of URLs before they are printed or logged: ``mqtt://user:***@host``."""

from __future__ import annotations

import logging
import re

# scheme://user:password@ — the password is anything up to the last "@" of the authority.
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'\"]*):[^\s/'\"]*@")


def redact(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` URL replaced by ***.

    A URL with an empty password (``postgresql://postgres:@/db``) is left as it is.
    """
    return _USERINFO.sub(lambda m: m["head"] + (":***@" if _has_password(m[0]) else ":@"), text)


def _has_password(userinfo: str) -> bool:
    return not userinfo.endswith(":@")


class RedactingFilter(logging.Filter):
    """A log filter that takes passwords out of every record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the message with :func:`redact`; never drops a record."""
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True
