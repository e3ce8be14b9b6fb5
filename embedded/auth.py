"""Who may connect to the embedded broker, and publish or subscribe where (amqtt plugins).

The policy is ``trust``'s; this module applies it at the broker. A :class:`Gate` holds the
auth mode and the current registry snapshot (a ``trust.Directory``, replaced whole every
couple of seconds by :class:`DirectoryRefresher`); the two amqtt plugins consult it:

* :class:`DirectoryAuthPlugin` — a CONNECT with valid credentials is let in as its principal
  (device or service account); one without credentials only when the mode lets anonymous
  clients in (``auto`` on a loopback listener, or ``off``); wrong credentials never (as
  Mosquitto does), except with ``off``, where nothing is checked.
* :class:`DirectoryTopicPlugin` — a device publishes only to its own topic and only while the
  current snapshot has it enabled (``trust.may_publish``); service accounts subscribe per
  ``trust.may_subscribe``; anonymous clients publish and subscribe anywhere (a local demo).

amqtt builds plugins itself from dotted names, handing each only its own config section, so
the composition root's gate travels *in* that section (``{"gate": gate}``, see
:func:`auth_plugins`): no module-level state.

amqtt asks the topic plugins about a PUBLISH only after the protocol flow has queued and
acknowledged it; ``embedded.broker.DurableHandler`` therefore asks them itself, before the
commit, and never stores or acknowledges a refused publish (see there).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from amqtt.contexts import Action, BaseContext
from amqtt.errors import PluginInitError
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from sensors.errors import RejectedPayload
from sensors.topics import parse_topic
from trust import (
    AuthMode,
    Device,
    Directory,
    Principal,
    StaticDirectory,
    anonymous_allowed,
    may_publish,
    may_subscribe,
    refusal,
)

log = logging.getLogger(__name__)

LOGIN_KEY = "civicpulse.login"
"""Where a session's :class:`Login` lives in amqtt's ``Session.attributes``."""

DirectoryLoader = Callable[[str], Directory]
"""Database URL → a fresh registry snapshot (e.g. ``storage.registry_store.load_directory``)."""


def empty_directory(_database_url: str = "") -> Directory:
    """A registry with nobody in it: only anonymous clients get in (when the mode allows)."""
    return StaticDirectory()


@dataclass(frozen=True, slots=True)
class Login:
    """Who a connected client is: a principal, or None for an anonymous client."""

    principal: Principal | None


class Gate:
    """The auth mode and the current directory snapshot: every decision the plugins make.

    ``directory`` is swapped whole (one attribute assignment) by the refresher thread; each
    decision reads it once, so it sees one snapshot or the next, never a mix.
    """

    def __init__(
        self,
        mode: AuthMode,
        listener_hosts: Sequence[str],
        directory: Directory | None = None,
    ) -> None:
        self.mode = mode
        self.listener_hosts = tuple(listener_hosts)
        self.anonymous = anonymous_allowed(mode, self.listener_hosts)
        self.directory: Directory = directory if directory is not None else StaticDirectory()

    def describe(self) -> str:
        """One line for the start-up banner."""
        if self.mode is AuthMode.OFF:
            return "off — anyone may connect and publish anywhere (no device authentication)"
        if self.anonymous:
            return (
                f"{self.mode.value} — anonymous clients allowed (loopback only); "
                "registered devices log in with their sensor id and secret"
            )
        return f"{self.mode.value} — anonymous clients refused; devices log in with their secret"

    def login(self, username: str | None, secret: str | None) -> Login | None:
        """Who a CONNECT is, or None to refuse it. Blocking: verifying a secret is slow."""
        if self.mode is AuthMode.OFF:
            return Login(None)
        if not username:
            return Login(None) if self.anonymous and not secret else None
        principal = self.directory.authenticate(username, secret or "")
        return None if principal is None else Login(principal)

    def current(self, login: Login) -> Principal | None:
        """The login's principal as the current snapshot has it: a device disabled or removed
        since it connected is disabled (or gone) here at once."""
        principal = login.principal
        if isinstance(principal, Device):
            return self.directory.device(principal.sensor_id)
        return principal

    def may_publish(self, login: Login | None, topic: str) -> bool:
        """Whether a client logged in as ``login`` (None: never logged in) may publish."""
        if login is None:
            return self.mode is AuthMode.OFF
        if login.principal is None:
            return True  # anonymous (only ever let in by auto-on-loopback or off): as before
        return may_publish(self.current(login), topic)

    def may_subscribe(self, login: Login | None, topic_filter: str) -> bool:
        """Whether a client logged in as ``login`` (None: never logged in) may subscribe."""
        if login is None:
            return self.mode is AuthMode.OFF
        if login.principal is None:
            return True
        return may_subscribe(self.current(login), topic_filter)

    def refusal(self, topic: str) -> str | None:
        """Ingest's check (``route_message(authorize=...)``) for a message that got past a
        broker anyway: ``unknown_device`` / ``device_disabled``, or None. A topic that does
        not parse is left to the decoder (``bad_topic``)."""
        try:
            address = parse_topic(topic)
        except RejectedPayload:
            return None
        return refusal(self.directory.device(address.sensor_id), topic)


def login_of(session: Session | None) -> Login | None:
    """The :class:`Login` the auth plugin recorded on ``session`` (None: none recorded)."""
    if session is None:
        return None
    login = session.attributes.get(LOGIN_KEY)
    return login if isinstance(login, Login) else None


def _gate_from(context: BaseContext) -> Gate:
    gate = getattr(context.config, "gate", None)
    if not isinstance(gate, Gate):
        raise PluginInitError("the civicpulse broker plugins need the engine's gate in 'gate'")
    return gate


class DirectoryAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """amqtt auth plugin: a CONNECT is let in as whom :meth:`Gate.login` says, or refused."""

    @dataclass
    class Config:
        gate: Any = None  # the engine's Gate (Any: dacite checks it no further)

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self.gate = _gate_from(context)

    async def authenticate(self, *, session: Session) -> bool:
        session.attributes.pop(LOGIN_KEY, None)  # a resumed session logs in afresh
        gate = self.gate
        username, secret = session.username, session.password
        if username and gate.mode is not AuthMode.OFF:
            login = await asyncio.to_thread(gate.login, username, secret)  # argon2: not inline
        else:
            login = gate.login(username, secret)
        if login is None:
            log.warning(
                "refused connection from %s (client id %r, user %r): %s",
                session.remote_address,
                session.client_id,
                username,
                "bad credentials" if username else "no credentials (anonymous not allowed)",
            )
            return False
        if session.will_flag and not gate.may_publish(login, session.will_topic or ""):
            log.warning(
                "refused connection of %r: its will topic %r is not its to publish to",
                username,
                session.will_topic,
            )
            return False
        session.attributes[LOGIN_KEY] = login
        session.is_anonymous = login.principal is None
        return True


class DirectoryTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]  # amqtt is untyped
    """amqtt topic plugin: publish per :meth:`Gate.may_publish`, subscribe per
    :meth:`Gate.may_subscribe`; delivery to a subscription already allowed is not re-asked."""

    @dataclass
    class Config:
        gate: Any = None

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self.gate = _gate_from(context)

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        return topic_allowed(self.gate, session, topic, action)


def topic_allowed(
    gate: Gate, session: Session | None, topic: str | None, action: Action | None
) -> bool:
    """The topic plugin's answer (the broker also asks it directly, without a task)."""
    if action == Action.RECEIVE:
        return True
    if topic is None:
        return False
    login = login_of(session)
    if action == Action.PUBLISH:
        return gate.may_publish(login, topic)
    if action == Action.SUBSCRIBE:
        allowed = gate.may_subscribe(login, topic)
        if not allowed:
            log.info("refused subscription of %r to %r", _who(session), topic)
        return allowed
    return False


def _who(session: Session | None) -> str | None:
    return None if session is None else (session.username or session.client_id)


def auth_plugins(gate: Gate) -> dict[str, dict[str, Any]]:
    """The ``plugins`` section of an amqtt broker config enforcing ``gate``."""
    return {
        f"{__name__}.DirectoryAuthPlugin": {"gate": gate},
        f"{__name__}.DirectoryTopicPlugin": {"gate": gate},
    }


class DirectoryRefresher:
    """Reloads the gate's directory every ``interval_s`` in a thread of its own.

    A disabled (or removed) device is refused at its next CONNECT, and its next PUBLISH,
    within ``interval_s`` plus one load. A load that fails keeps the previous snapshot.
    """

    def __init__(self, gate: Gate, load: Callable[[], Directory], interval_s: float = 2.0) -> None:
        self._gate = gate
        self._load = load
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def refresh(self) -> bool:
        """Load once now; whether it worked (the gate keeps its snapshot if not)."""
        try:
            directory = self._load()
        except Exception as exc:
            if not self._failing:  # once per outage, not every interval
                log.warning("could not reload the device registry (keeping the last): %s", exc)
            self._failing = True
            return False
        if self._failing:
            log.info("device registry reloaded again")
        self._failing = False
        self._gate.directory = directory
        return True

    def start(self) -> None:
        """Start reloading in the background (call :meth:`refresh` first for a fresh start)."""
        self._thread = threading.Thread(target=self._run, name="civicpulse-directory", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.refresh()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop reloading; a load still in progress (database down) is left to finish alone."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None


__all__ = [
    "LOGIN_KEY",
    "DirectoryAuthPlugin",
    "DirectoryLoader",
    "DirectoryRefresher",
    "DirectoryTopicPlugin",
    "Gate",
    "Login",
    "auth_plugins",
    "empty_directory",
    "login_of",
]
