"""The embedded broker's front door: each MQTT packet is framed and checked before amqtt."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from amqtt.adapters import ReaderAdapter

from sensors.deadletter import DeadLetter
from sensors.errors import RejectReason

log = logging.getLogger(__name__)

DEFAULT_MAX_PACKET_BYTES = 1_048_576  # the compose Mosquitto's max_packet_size
PREFIX_BYTES = 4096  # of an oversize PUBLISH's payload, read for its dead letter (KEEP_BYTES)
OVERSIZE_WAIT_S = 1.0  # how long an oversize PUBLISH's topic and prefix are waited for
# A connection must have sent its whole CONNECT within this (slow-loris clients that trickle
# it a byte at a time would otherwise hold a socket and a task each for as long as they like).
CONNECT_TIMEOUT_S = 10.0
LOG_BURST = 10  # refusal log lines per LOG_WINDOW_S; the rest are counted, then summed up
LOG_WINDOW_S = 10.0

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14
_SERVER_ONLY = {CONNACK: "CONNACK", SUBACK: "SUBACK", UNSUBACK: "UNSUBACK", PINGRESP: "PINGRESP"}
_FLAGS_0010 = {PUBREL, SUBSCRIBE, UNSUBSCRIBE}  # [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1]
_CONNACK_BAD_PROTOCOL = b"\x20\x02\x00\x01"  # 3.1.1 CONNACK 0x01: unacceptable protocol level
# Refusals of a PUBLISH that become dead letters (evidence of what a device sent), by reason.
_DEAD_LETTERED = {
    "packet_too_large": RejectReason.PAYLOAD_TOO_LARGE.value,
    "wildcard_in_topic": RejectReason.BAD_TOPIC.value,
    "bad_utf8": RejectReason.BAD_TOPIC.value,
    "empty_topic": RejectReason.BAD_TOPIC.value,
}


class Malformed(Exception):
    """A packet the front door refuses; ``reason`` is a stable code, ``detail`` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class UnsupportedProtocol(Malformed):
    """A well-formed CONNECT for a protocol level amqtt does not speak (only 3.1.1 is)."""


@dataclass(frozen=True, slots=True)
class Publish:
    """What the front door let through of one PUBLISH: amqtt must parse exactly this."""

    topic: str
    qos: int
    packet_id: int | None
    payload: memoryview


class _Cursor:
    """Reads MQTT fields off one packet's body; running past its end is a malformed packet."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.left:
            raise Malformed("bad_length", f"{what} runs past the end of the packet")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "big")

    def binary(self, what: str) -> bytes:
        return self.take(self.u16(what), what)

    def string(self, what: str) -> str:
        return utf8(self.binary(what), what)


def utf8(raw: bytes, what: str) -> str:
    """``raw`` as an MQTT UTF-8 string: well-formed, no surrogates, no U+0000 ([MQTT-1.5.3])."""
    try:
        text = raw.decode("utf-8")  # strict: refuses overlong forms and surrogates
    except UnicodeDecodeError as exc:
        raise Malformed("bad_utf8", f"{what} is not valid UTF-8 [MQTT-1.5.3-1]") from exc
    if "\x00" in text:
        raise Malformed("bad_utf8", f"{what} contains U+0000 [MQTT-1.5.3-2]")
    return text


def _check_topic_name(topic: str) -> None:
    if not topic:
        raise Malformed("empty_topic", "PUBLISH topic name is empty [MQTT-4.7.3-1]")
    if "+" in topic or "#" in topic:
        raise Malformed(
            "wildcard_in_topic", "PUBLISH topic name contains a wildcard (+ or #) [MQTT-3.3.2-2]"
        )


def _check_topic_filter(text: str) -> None:
    levels = text.split("/")
    ok = bool(text) and all(
        ("#" not in level or (level == "#" and i == len(levels) - 1))
        and ("+" not in level or level == "+")
        for i, level in enumerate(levels)
    )
    if not ok:
        raise Malformed("bad_topic_filter", f"invalid topic filter {text!r} [MQTT-4.7.1]")


def _packet_id(cur: _Cursor, what: str) -> int:
    packet_id = cur.u16(f"{what} packet identifier")
    if packet_id == 0:
        raise Malformed("bad_packet_id", f"{what} packet identifier is 0 [MQTT-2.3.1-1]")
    return packet_id


def check_fixed_header(packet_type: int, flags: int, *, first: bool) -> None:
    """Refuse a packet by its first byte alone: type, order and flags ([MQTT-2.2])."""
    if packet_type in (0, 15):
        raise Malformed("reserved_type", f"reserved packet type {packet_type} [MQTT-2.2.1]")
    if first and packet_type != CONNECT:
        raise Malformed("not_connect", "the first packet is not CONNECT [MQTT-3.1.0-1]")
    if not first and packet_type == CONNECT:
        raise Malformed("second_connect", "a second CONNECT [MQTT-3.1.0-2]")
    if packet_type in _SERVER_ONLY:
        raise Malformed("server_packet", f"a client sent {_SERVER_ONLY[packet_type]}")
    if packet_type == PUBLISH:
        qos = (flags >> 1) & 0x03
        if qos == 3:
            raise Malformed("bad_qos", "PUBLISH with QoS 3 [MQTT-3.3.1-4]")
        if qos == 0 and flags & 0x08:
            raise Malformed("bad_flags", "PUBLISH QoS 0 with DUP set [MQTT-3.3.1-2]")
        return
    expected = 0x02 if packet_type in _FLAGS_0010 else 0x00
    if flags != expected:
        raise Malformed("bad_flags", f"packet type {packet_type} with flags {flags:#06b}")


def check_body(packet_type: int, flags: int, body: bytes) -> Publish | None:
    """Refuse a packet whose body is not exactly what its type allows; a PUBLISH's parts."""
    cur = _Cursor(body)
    if packet_type == CONNECT:
        _check_connect(cur)
    elif packet_type == PUBLISH:
        topic = cur.string("PUBLISH topic name")
        _check_topic_name(topic)
        qos = (flags >> 1) & 0x03
        packet_id = _packet_id(cur, "PUBLISH") if qos else None
        return Publish(topic, qos, packet_id, memoryview(body)[cur.pos :])
    elif packet_type in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        _packet_id(cur, "acknowledgement")
    elif packet_type == SUBSCRIBE:
        _packet_id(cur, "SUBSCRIBE")
        if not cur.left:
            raise Malformed("bad_length", "SUBSCRIBE without a topic filter [MQTT-3.8.3-3]")
        while cur.left:
            _check_topic_filter(cur.string("SUBSCRIBE topic filter"))
            if cur.u8("SUBSCRIBE requested QoS") > 2:
                raise Malformed("bad_qos", "SUBSCRIBE requested QoS above 2 [MQTT-3.8.3-4]")
    elif packet_type == UNSUBSCRIBE:
        _packet_id(cur, "UNSUBSCRIBE")
        if not cur.left:
            raise Malformed("bad_length", "UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]")
        while cur.left:
            _check_topic_filter(cur.string("UNSUBSCRIBE topic filter"))
    if cur.left:
        raise Malformed(
            "bad_length", f"{cur.left} bytes after the end of packet type {packet_type}"
        )
    return None


def _check_connect(cur: _Cursor) -> None:
    name = cur.binary("CONNECT protocol name")
    level = cur.u8("CONNECT protocol level")
    if name not in (b"MQTT", b"MQIsdp"):
        raise Malformed("bad_connect", f"protocol name {name!r} [MQTT-3.1.2-1]")
    if name != b"MQTT" or level != 4:
        raise UnsupportedProtocol(
            "unsupported_protocol", f"protocol {name.decode()} level {level}: only MQTT 3.1.1"
        )
    flags = cur.u8("CONNECT flags")
    cur.u16("CONNECT keep alive")
    will, will_qos, will_retain = flags & 0x04, (flags >> 3) & 0x03, flags & 0x20
    if flags & 0x01:
        raise Malformed("bad_connect", "CONNECT reserved flag set [MQTT-3.1.2-3]")
    if will_qos == 3 or (not will and (will_qos or will_retain)):
        raise Malformed("bad_connect", "CONNECT will QoS/retain flags [MQTT-3.1.2-13..15]")
    if flags & 0x40 and not flags & 0x80:
        raise Malformed("bad_connect", "CONNECT password without user name [MQTT-3.1.2-22]")
    cur.string("CONNECT client identifier")
    if will:
        _check_topic_name(cur.string("CONNECT will topic"))
        cur.binary("CONNECT will message")
    if flags & 0x80:
        cur.string("CONNECT user name")
    if flags & 0x40:
        cur.binary("CONNECT password")


def _lenient_publish(flags: int, body: bytes) -> tuple[str, bytes, int]:
    """Best-effort topic (escaped), payload and payload offset of a refused PUBLISH."""
    if len(body) < 2:
        return "", b"", len(body)
    n = int.from_bytes(body[:2], "big")
    topic = body[2 : 2 + n].decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
    start = min(2 + n + (2 if (flags >> 1) & 0x03 else 0), len(body))
    return topic, body[start:], start


RecordDeadLetter = Callable[[DeadLetter, str], Awaitable[None]]
"""Store one dead letter under a source reference (dedupes a retried refusal)."""


@dataclass(slots=True)
class FrontDoor:
    """The broker-wide policy and counters every connection's :class:`FrontDoorReader` uses."""

    max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES
    record: RecordDeadLetter | None = None
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    refused: Counter[str] = field(default_factory=Counter)  # by reason code
    deadletters: int = 0  # refusals recorded as dead letters
    _window_start: float = 0.0
    _logged: int = 0
    _suppressed: int = 0

    def count(self, exc: Malformed, peer: str) -> None:
        """Count one refusal and log it (at most ``LOG_BURST`` lines per ``LOG_WINDOW_S``)."""
        self.refused[exc.reason] += 1
        now = time.monotonic()
        if now - self._window_start > LOG_WINDOW_S:
            if self._suppressed:
                log.warning("front door: %d more refusals not logged", self._suppressed)
            self._window_start, self._logged, self._suppressed = now, 0, 0
        if self._logged >= LOG_BURST:
            self._suppressed += 1
            return
        self._logged += 1
        log.warning("front door: closed %s: %s (%s)", peer, exc.reason, exc.detail)


class FrontDoorReader(ReaderAdapter):  # type: ignore[misc]  # amqtt is untyped
    """amqtt's stream reader, but a whole packet is read and checked before amqtt sees a byte.

    amqtt parses straight off the socket and, on a packet it cannot parse, logs "Message
    discarded" and reads on from wherever it stopped — inside the packet (issue 21: a
    PUBLISH hidden in a payload became a reading). Here the stream is framed by the remaining
    length, each packet is checked against MQTT 3.1.1 (:func:`check_fixed_header`,
    :func:`check_body`) and the size limit, and only then served to amqtt, never past its end.
    Any violation closes the connection (every later read is end-of-stream), is counted and
    logged, and a refused PUBLISH with a bad topic or over the size limit is dead-lettered
    (topic, the first ``PREFIX_BYTES`` of its payload, its declared size).
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, door: FrontDoor
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._door = door
        self._packet = b""
        self._pos = 0
        self._first = True
        self.closed = False
        self.last_packet_at = time.monotonic()
        self._keep_alive_s = 0.0
        self.publishes: deque[Publish] = deque()  # let through, not yet handled by amqtt
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"

    async def read(self, n: int = -1) -> bytes:
        """Up to the end of the current packet; the next packet only when amqtt starts one."""
        if self.closed:
            return b""
        if self._pos >= len(self._packet):
            if n != 1:  # amqtt reads a new packet's first byte alone: anything else overran
                await self.refuse(Malformed("framing", f"a read of {n} bytes past a packet"))
                return b""
            if not await self._next_packet():
                return b""
        end = self._pos + n
        if n < 0 or end > len(self._packet):
            await self.refuse(Malformed("framing", f"a read of {n} bytes past a packet"))
            return b""
        data = self._packet[self._pos : end]
        self._pos = end
        return data

    def watch_keep_alive(self, keep_alive_s: int) -> None:
        """Close the connection once nothing arrived for 1.5 × the client's keep-alive.

        [MQTT-3.1.2-24]. One timer per connection, re-armed only when it fires (amqtt arms a
        timer and a task per packet read for this and then ignores the timeout)."""
        if keep_alive_s > 0:
            self._keep_alive_s = float(keep_alive_s)
            asyncio.get_running_loop().call_later(1.5 * keep_alive_s, self._check_idle)

    def _check_idle(self) -> None:
        if self.closed:
            return
        limit = 1.5 * self._keep_alive_s
        idle = time.monotonic() - self.last_packet_at
        if idle < limit:
            asyncio.get_running_loop().call_later(limit - idle, self._check_idle)
            return
        exc = Malformed(
            "keep_alive_timeout",
            f"nothing received for {idle:.1f} s (keep-alive {self._keep_alive_s:g} s)",
        )
        self._close()
        self._door.count(exc, self.peer)

    def feed_eof(self) -> None:
        """Pass end-of-stream on to the socket reader."""
        self._reader.feed_eof()

    def expect_publish(self, topic: str, qos: int, packet_id: int | None, data: bytes) -> bool:
        """Whether amqtt parsed exactly the next PUBLISH that was let through."""
        expected = self.publishes.popleft() if self.publishes else None
        return (
            expected is not None
            and (expected.topic, expected.qos, expected.packet_id) == (topic, qos, packet_id)
            and expected.payload == data
        )

    async def _next_packet(self) -> bool:
        if not self._first:
            return await self._read_packet()
        try:
            async with asyncio.timeout(self._door.connect_timeout_s):
                return await self._read_packet()
        except TimeoutError:
            exc = Malformed(
                "connect_timeout",
                f"no complete CONNECT within {self._door.connect_timeout_s:g} s (slow client)",
            )
            if self.closed:  # the timeout interrupted it mid-packet: already closed, count it
                self._door.count(exc, self.peer)
            else:
                await self.refuse(exc)
            return False

    async def _read_packet(self) -> bool:
        started = False
        try:
            first = await self._reader.read(1)
            if not first:
                self._close()
                return False
            started = True
            packet_type, flags = first[0] >> 4, first[0] & 0x0F
            check_fixed_header(packet_type, flags, first=self._first)
            length = await self._remaining_length()
            total = 1 + len(length) + (remaining := _decode_length(length))
            if total > self._door.max_packet_bytes:
                await self._oversize(packet_type, flags, remaining, total)
                return False
            body = await self._reader.readexactly(remaining)
        except Malformed as exc:
            await self.refuse(exc)
            return False
        except (asyncio.IncompleteReadError, ConnectionError):
            self._close()
            return False
        except asyncio.CancelledError:
            if started:  # stopped mid-packet (amqtt's read timeout): the framing is lost
                self._close()
            raise
        try:
            publish = check_body(packet_type, flags, body)
        except Malformed as exc:
            if isinstance(exc, UnsupportedProtocol):
                self._writer.write(_CONNACK_BAD_PROTOCOL)
            letter = _letter(exc, flags, body, len(body)) if packet_type == PUBLISH else None
            await self.refuse(exc, letter)
            return False
        self._first = False
        self.last_packet_at = time.monotonic()
        self._packet = first + length + body
        self._pos = 0
        if publish is not None:
            self.publishes.append(publish)
        return True

    async def _remaining_length(self) -> bytes:
        encoded = b""
        while True:
            byte = await self._reader.readexactly(1)
            encoded += byte
            if not byte[0] & 0x80:
                return encoded
            if len(encoded) == 4:
                raise Malformed(
                    "bad_remaining_length", "remaining length over 4 bytes [MQTT-2.2.3]"
                )

    async def _oversize(self, packet_type: int, flags: int, remaining: int, total: int) -> None:
        """Refuse a packet over the limit after reading at most its topic and a payload prefix."""
        exc = Malformed(
            "packet_too_large",
            f"{total}-byte packet over the broker's {self._door.max_packet_bytes}-byte limit "
            "(max_packet_bytes); connection closed, the rest never read",
        )
        letter = None
        if packet_type == PUBLISH:
            head = b""
            try:
                async with asyncio.timeout(OVERSIZE_WAIT_S):
                    head = await self._reader.readexactly(2)
                    want = 2 + int.from_bytes(head, "big") + (2 if (flags >> 1) & 0x03 else 0)
                    head += await self._reader.readexactly(min(want, remaining) - 2)
                    keep = min(want + PREFIX_BYTES, remaining)
                    while len(head) < keep:
                        chunk = await self._reader.read(keep - len(head))
                        if not chunk:
                            break
                        head += chunk
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                pass
            letter = _letter(exc, flags, head, remaining)
        await self.refuse(exc, letter)

    async def refuse(self, exc: Malformed, letter: tuple[DeadLetter, str] | None = None) -> None:
        """Close the connection, count and log why, and record a dead letter if there is one."""
        if self.closed:
            return
        self._close()
        self._door.count(exc, self.peer)
        if letter is not None and self._door.record is not None:
            try:
                await self._door.record(*letter)
                self._door.deadletters += 1
            except Exception:
                log.exception("front door: dead letter for %s not stored", self.peer)

    def _close(self) -> None:
        self.closed = True
        self._packet, self._pos = b"", 0
        self._writer.close()


def _decode_length(encoded: bytes) -> int:
    return sum((b & 0x7F) << (7 * i) for i, b in enumerate(encoded))


def _letter(
    exc: Malformed, flags: int, body: bytes, body_size: int
) -> tuple[DeadLetter, str] | None:
    """The dead letter (and its source reference) of a refused PUBLISH, if it gets one.

    ``body`` is the whole body, or only its start when the packet was over the size limit
    (``body_size`` is then the declared size): the letter's ``payload_size`` is the
    original's, but its SHA-256 can only be of the bytes read, and the detail says so.
    """
    reason = _DEAD_LETTERED.get(exc.reason)
    if reason is None:
        return None
    topic, payload, start = _lenient_publish(flags, body)
    size = max(body_size - start, len(payload))
    detail = f"refused at the broker, connection closed: {exc.detail}"
    if len(payload) < size:
        detail += f"; only the first {len(payload)} payload bytes were read (SHA-256 of those)"
    letter = DeadLetter(
        reason, detail, payload, topic, datetime.now(UTC), stage="broker", payload_size=size
    )
    digest = hashlib.sha256(
        b"\0".join([topic.encode(), exc.reason.encode(), str(size).encode(), letter.payload])
    )
    return letter, f"broker:{digest.hexdigest()}"


__all__ = ["DEFAULT_MAX_PACKET_BYTES", "FrontDoor", "FrontDoorReader", "Malformed", "Publish"]
