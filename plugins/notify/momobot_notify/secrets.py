"""Keeping the secrets in notification URLs out of logs, ``/ping`` and the page.

An apprise URL carries its credentials: a bot token as the host
(``tgram://TOKEN/CHAT``), a webhook id and token as the path
(``discord://ID/TOKEN``), a password (``mailto://user:pass@host``), keys in the
query (``?token=``). Everything shown of a URL is its scheme and its host when
the host is a network address; everything else is masked, and a log filter
blanks any of those parts that a library's message would carry.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, unquote, urlsplit

#: What replaces a secret.
MASK = "***"
#: A host shown as it is: localhost, an IPv4 or IPv6 address, or a dotted name with a letter in
#: its last label (a bare number, such as a Discord webhook id, is a credential).
_ADDRESS = re.compile(
    r"^(localhost|\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:.]+\]|([a-z0-9-]+\.)+[a-z][a-z0-9-]*)$", re.IGNORECASE
)
#: What is shown of a string that is no URL at all (it may be a token pasted whole).
NOT_A_URL = "<not a URL>"
#: Parts shorter than this are not secrets (a port, "to", an empty segment) and are not blanked:
#: blanking them would mangle every log line.
_SHORTEST_SECRET = 4


def _split(url: str) -> tuple[str, str, str, str, str, int | None]:
    """scheme, user, password, host, path+query, port, as far as the URL allows."""
    scheme, _, rest = url.partition("://")
    try:
        parts = urlsplit(f"x://{rest}")
    except ValueError:
        return scheme, "", "", "", rest, None
    try:
        port = parts.port
    except ValueError:  # a port out of range: the rest is still read (and masked)
        port = None
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.username or "", parts.password or "", parts.hostname or "", tail, port


def shown(url: str) -> str:
    """What a person is shown of ``url``: its scheme and, when it is a network address, its host
    and port; the rest masked (``json://127.0.0.1:8080/***``, ``tgram://***``)."""
    if "://" not in url:
        return NOT_A_URL
    scheme, user, password, host, tail, port = _split(url)
    if host and _ADDRESS.match(host):
        where = host + (f":{port}" if port else "")
        if user or password:
            where = f"{MASK}@{where}"
        path, _, query = tail.partition("?")
        return f"{scheme}://{where}" + (f"/{MASK}" if path.strip("/") else "") + (f"?{MASK}" if query else "")
    return f"{scheme}://{MASK}"


def secrets_of(url: str) -> list[str]:
    """The parts of ``url`` that may be credentials, longest first (each as written and unquoted)."""
    if "://" not in url:
        return [url] if len(url) >= _SHORTEST_SECRET else []
    _, user, password, host, tail, _ = _split(url)
    found = {user, password}
    if host and not _ADDRESS.match(host):
        found.add(host)
    path, _, query = tail.partition("?")
    found.update(segment for segment in path.split("/"))
    found.update(value for _, value in parse_qsl(query, keep_blank_values=True))
    found.add(url.partition("://")[2])
    out = set()
    for part in found:
        for form in (part, unquote(part)):
            if len(form) >= _SHORTEST_SECRET:
                out.add(form)
                # apprise's own short form of a secret in its log lines: first and last character.
                out.add(f"{form[0]}...{form[-1]}")
    return sorted(out, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class Redactor(logging.Filter):
    """A log filter that blanks the configured URLs' secrets from every record it passes."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: leave it as it is
            return True
        clean = redact(message, self.secrets)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks are formatted later from exc_info: keep the type, drop the text.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self.secrets)
            record.exc_info = None
        return True


#: The one filter every guard adds its secrets to.
_REDACTOR = Redactor([])


def guard(urls: list[str] | tuple[str, ...]) -> None:
    """Blank these URLs' secrets from every log record from now on, for the life of the process
    (a send still under way at exit logs too): one filter on apprise's and momobot's loggers and
    on the root logger's handlers, its secrets the union of every URL guarded."""
    secrets = {s for url in urls for s in secrets_of(url)}
    if not secrets:
        return
    _REDACTOR.secrets = sorted(secrets | set(_REDACTOR.secrets), key=len, reverse=True)
    for logger in (logging.getLogger("apprise"), logging.getLogger("momobot")):
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
    for handler in logging.getLogger().handlers:
        if _REDACTOR not in handler.filters:
            handler.addFilter(_REDACTOR)
