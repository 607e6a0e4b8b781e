"""Check that the API answers what its OpenAPI schema says: schemathesis ``--checks all``.

Starts ``momobot serve`` on a free 127.0.0.1 port with a journal in a temporary directory (no
plugins, so nothing dials out), runs schemathesis against its ``/openapi.json`` with the project's
``schemathesis.toml``, and stops the server. Exit status is schemathesis's.

    .venv/bin/python -m tox run -e api-conformance
    .venv/bin/python -m tox run -e api-conformance -- --max-examples 300
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def main(argv: list[str]) -> int:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOMOBOT_")}
    env["MOMOBOT_DISABLE_PLUGINS"] = "hotkey_ws,das,voice"
    with tempfile.TemporaryDirectory(prefix="momobot-api-") as tmp:
        log = Path(tmp, "serve.log")
        with log.open("wb") as out:
            serve = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "momobot_core.cli",
                    "serve",
                    "--port",
                    str(port),
                    "--db",
                    f"{tmp}/j.db",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp,
            )
        try:
            if not wait_listening(port, serve, timeout=30):
                sys.stderr.write(f"serve did not start:\n{log.read_text(errors='replace')}")
                return 2
            url = f"http://127.0.0.1:{port}/openapi.json"
            command = ["schemathesis", "run", url, "--checks", "all", *argv]
            return subprocess.call(command, cwd=ROOT)
        finally:
            serve.terminate()
            try:
                serve.wait(timeout=10)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
