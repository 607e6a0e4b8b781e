"""Real receivers on loopback for the notify plugin's tests: a JSON webhook and an SMTP server."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hotkey_helpers import free_port


class Webhook:
    """An HTTP server on 127.0.0.1 taking apprise's ``json://`` posts; ``hold`` keeps the next
    answer until ``release()``; ``fail`` answers 500."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.fail = False
        #: Paths answered 500 (``/b``): two URLs on one server, one of them failing.
        self.fail_paths: set[str] = set()
        self._gate = threading.Event()
        self._gate.set()
        self.arrived = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                hook.arrived.set()
                hook._gate.wait(30)
                if hook.fail or self.path in hook.fail_paths:
                    self.send_response(500)
                else:
                    hook.received.append(body)
                    header = self.headers.get("Authorization")
                    hook.auth.append(
                        base64.b64decode(header.split()[1]).decode()
                        if header and header.startswith("Basic")
                        else None
                    )
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "hook", auth: str = "") -> str:
        return f"json://{auth + '@' if auth else ''}127.0.0.1:{self.port}/{path}"

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def bodies(self) -> list[str]:
        return [str(r.get("message", "")) for r in self.received]

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._gate.set()
        self.server.shutdown()
        self.server.server_close()


class Smtp:
    """aiosmtpd on 127.0.0.1: each message's sender, recipients and text."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.messages: list[tuple[str, list[str], str]] = []
        smtp = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                smtp.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=bot@example.com&to=trader@example.com&mode=insecure"

    def __enter__(self) -> Smtp:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
