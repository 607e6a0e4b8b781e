"""What is decided about a request before any of its body is read.

A pure ASGI middleware in front of the whole app, so that a request the API
would refuse costs no parsing and no memory (an 80 MB body sent without a
token is answered 401 unread), and so that a web page in the trader's own
browser can reach none of the state-changing endpoints:

* ``Host`` must name an allowed host (DNS rebinding: a page on evil.example
  resolving to 127.0.0.1 still sends ``Host: evil.example``): 400.
* A token in the query string is refused (it would end up in logs and
  browser history): 400.
* A state-changing request whose ``Origin`` names another host:port than its
  ``Host`` is refused, token or not (a form posted by any web page): 403.
  No ``Origin`` (curl, scripts) passes.
* With a token set, a state-changing request needs ``Authorization: Bearer
  <token>`` (compared in constant time) or the dashboard's session cookie
  (given once the token was typed into the page; HttpOnly, SameSite=Strict):
  401. The login form itself is one exception: it checks the token it
  is sent. ``POST /signals`` is the other: its body's shared secret is checked by the route.
* A body over :data:`MAX_BODY` bytes is refused unread: 413.

The access log names the method, the path and the status, never the query string.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger("momobot.api.access")

MAX_BODY = 64 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_PARAMS = frozenset({"token", "access_token", "api_token", "auth", "authorization"})
SESSION_COOKIE = "momobot_session"
LOGIN_PATH = "/ui/login"
LOGOUT_PATH = "/ui/logout"
#: Outside entry signals (a TradingView alert cannot send a header): the shared secret in the
#: body authenticates them, checked by the route itself.
SIGNALS_PATH = "/signals"
#: GET paths that show the dashboard's fragments: with a token, only to a signed-in browser.
PAGE_PREFIXES = ("/ui/", "/events")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


#: A whole ``Host`` header: one host (a bracketed IPv6 literal, an IPv4 address or a name) and an
#: optional port, nothing else (a list, spaces, text after the bracket are refused).
_HOST_HEADER = re.compile(r"(?:\[[0-9a-f:.]+\]|[a-z0-9_](?:[a-z0-9._-]*[a-z0-9_])?)(?::[0-9]{1,5})?")


def parse_host_header(value: str) -> str | None:
    """The host of a well-formed ``Host`` header (lower case), or None for anything else."""
    value = value.lower()
    if not _HOST_HEADER.fullmatch(value):
        return None
    return host_name(value)


def host_name(value: str) -> str:
    """The host part of a ``Host`` header or netloc: ``[::1]:8000`` -> ``[::1]``, lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end > 0 else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


#: How long a dashboard session lasts (``[api] session_hours``): a trading day and its evening.
SESSION_HOURS = 12.0
#: Wrong tokens from one client within ``FAILURE_WINDOW_S`` before it is locked out for
#: ``LOCKOUT_S`` (429, Retry-After): a guess a second at most, not hundreds.
MAX_FAILURES = 5
FAILURE_WINDOW_S = 60.0
LOCKOUT_S = 30.0


class Sessions:
    """The API token, the dashboard sessions given for it (random ids, never the token, each
    ending ``session_hours`` after it began), and the clients locked out for guessing."""

    def __init__(
        self,
        token: str | None,
        *,
        session_hours: float = SESSION_HOURS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.session_s = session_hours * 3600
        self._clock = clock
        self._ids: dict[str, float] = {}  # session id -> when it ends
        self._failures: dict[str, list[float]] = {}
        self._locked: dict[str, float] = {}  # client -> until

    @property
    def required(self) -> bool:
        return self.token is not None

    def token_matches(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def open(self) -> str:
        session = secrets.token_urlsafe(32)
        self._ids[session] = self._clock() + self.session_s
        return session

    def _session_of(self, cookie_header: str | None) -> str | None:
        """Our session id in a ``Cookie`` header, read by hand, pair by pair: cookies of other
        programs on 127.0.0.1 (cookies are shared across ports) may be anything."""
        now = self._clock()
        for part in (cookie_header or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE:
                value = value.strip().strip('"')
                for session, ends in list(self._ids.items()):
                    if hmac.compare_digest(value.encode(), session.encode()):
                        if ends > now:
                            return session
                        del self._ids[session]  # ended: sign in again
        return None

    def valid(self, cookie_header: str | None) -> bool:
        """True when the request's ``Cookie`` header carries a live session given by this process."""
        return self._session_of(cookie_header) is not None

    def close(self, cookie_header: str | None) -> None:
        """Sign out: the session in the header ends now."""
        session = self._session_of(cookie_header)
        if session is not None:
            del self._ids[session]

    def allows(self, headers: dict[bytes, bytes]) -> bool:
        """No token configured, or the right bearer token, or a valid session cookie."""
        if self.token is None:
            return True
        given = headers.get(b"authorization", b"")
        if hmac.compare_digest(given, f"Bearer {self.token}".encode()):
            return True
        return self.valid(headers.get(b"cookie", b"").decode("latin-1"))

    # -- guessing --------------------------------------------------------------------------------

    def locked_for(self, client: str) -> float:
        """Seconds this client stays locked out (0: it may try)."""
        until = self._locked.get(client)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._locked[client]
            return 0.0
        return left

    def failed(self, client: str) -> None:
        """A wrong token from ``client``: enough of them lock it out for a while."""
        now = self._clock()
        recent = [t for t in self._failures.get(client, []) if now - t < FAILURE_WINDOW_S]
        recent.append(now)
        if len(recent) >= MAX_FAILURES:
            self._locked[client] = now + LOCKOUT_S
            recent = []
            log.warning(
                "%d wrong API tokens from %s within %g s: locked out for %g s",
                MAX_FAILURES,
                client,
                FAILURE_WINDOW_S,
                LOCKOUT_S,
            )
        self._failures[client] = recent
        if len(self._failures) > 10_000:  # a flood of clients: forget the oldest
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


class RequestGuard:
    """ASGI middleware enforcing the rules above; ``token`` None means no token is required."""

    def __init__(
        self,
        app: App,
        *,
        token: str | None = None,
        allowed_hosts: Iterable[str],
        max_body: int = MAX_BODY,
        sessions: Sessions | None = None,
    ) -> None:
        self.app = app
        self.sessions = sessions if sessions is not None else Sessions(token)
        self.allowed_hosts = frozenset(host_name(h) for h in allowed_hosts)
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: list[int] = [0]

        async def logging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        refusal = self._refusal(scope)
        if refusal is None and scope["method"] not in SAFE_METHODS:
            body, too_large = await self._read_body(scope, receive)
            if body is None:
                log.info(
                    "%s %s: the client went away before sending its whole body; not applied",
                    scope["method"],
                    scope["path"],
                )
                return  # never act on half a request
            if too_large:
                refusal = (413, f"request body over {self.max_body // 1024} KiB: refused unread")
            else:
                receive = _replay(body)
        if refusal is not None:
            await _error(logging_send, *refusal)
        else:
            await self.app(scope, receive, logging_send)
        level = logging.INFO if status[0] >= 400 else logging.DEBUG
        log.log(level, "%s %s %d", scope["method"], scope["path"], status[0])

    def _refusal(self, scope: Scope) -> tuple[int, str, dict[str, str]] | tuple[int, str] | None:
        headers = {k.lower(): v for k, v in scope["headers"]}
        # A client that guessed wrong too often: its attempts with a token (a bearer header, the
        # sign-in form) wait, the right token too, or a guesser would learn it. A signed-in
        # page's session still works (its kill switch must), and so do requests with no token.
        attempt = bool(headers.get(b"authorization")) or (
            scope["path"] == LOGIN_PATH and scope["method"] == "POST"
        )
        locked = self.sessions.locked_for(client_key(scope)) if attempt else 0.0
        if locked > 0 and not self.sessions.valid(headers.get(b"cookie", b"").decode("latin-1")):
            return (
                429,
                (f"too many wrong API tokens from this address: try again in {math.ceil(locked)} s"),
                {"retry-after": str(math.ceil(locked))},
            )
        host = headers.get(b"host", b"").decode("latin-1")
        name = parse_host_header(host)
        if name is None:
            return 400, f"Host {host!r} is not a single host with an optional port"
        if name not in self.allowed_hosts:
            return 400, (
                f"Host {host!r} is not one this API answers to (add it to [api]"
                " allowed_hosts if you reach the bot by that name)"
            )
        query = scope.get("query_string", b"").decode("latin-1")
        if query and any(name.lower() in TOKEN_PARAMS for name, _ in parse_qsl(query, True)):
            return 400, (
                "a token in the query string is refused (it ends up in logs and browser"
                " history): send 'Authorization: Bearer <token>'"
            )
        if scope["method"] in SAFE_METHODS:
            path = scope["path"]
            if path.startswith(PAGE_PREFIXES) and path != LOGIN_PATH and not self.sessions.allows(headers):
                # The dashboard's own pages and fragments (plugin panels too) need the sign-in.
                if headers.get(b"authorization"):
                    self.sessions.failed(client_key(scope))  # a wrong token given: a guess
                return 401, "sign in first: missing or wrong API token or session"
            return None
        origin = headers.get(b"origin")
        if origin is not None:
            parts = urlsplit(origin.decode("latin-1"))
            # Scheme, host and port: a page served over https is another origin than this
            # plain-http server, even on the same host and port.
            if parts.netloc.lower() != host.lower() or parts.scheme.lower() != scope.get("scheme", "http"):
                return 403, (
                    f"a request from the web page at {origin.decode('latin-1')!r} may not"
                    " change anything here"
                )
        if scope["path"] not in (LOGIN_PATH, SIGNALS_PATH) and not self.sessions.allows(headers):
            if headers.get(b"authorization"):
                self.sessions.failed(client_key(scope))  # a wrong token given, not just none
            return 401, "missing or wrong API token", {"www-authenticate": "Bearer"}
        return None

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes | None, bool]:
        """The whole body (None if the client went away first), and whether it was too large."""
        headers = {k.lower(): v for k, v in scope["headers"]}
        length = headers.get(b"content-length")
        if length is not None:
            try:
                if int(length) > self.max_body:
                    return b"", True
            except ValueError:
                return b"", True
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None, False
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return b"", True
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), False


def client_key(scope: Scope) -> str:
    """Who guesses, for the lockout: every loopback address is one client (127.0.0.0/8 holds
    16 million), and an IPv6 address counts by its /64 (what one host is given)."""
    client = scope.get("client")
    if not client:
        return "?"
    try:
        address = ipaddress.ip_address(str(client[0]))
    except ValueError:
        return str(client[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _error(send: Send, status: int, message: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
