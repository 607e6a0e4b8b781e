"""A real ``momobot serve`` process on a free loopback port, for the API tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from hotkey_helpers import free_port, wait_until


class ApiProcess:
    def __init__(self, proc: subprocess.Popen[str], url: str, err_path: Path) -> None:
        self.proc = proc
        self.url = url
        self.err_path = err_path
        self.client = httpx.Client(base_url=url, timeout=10)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.communicate(timeout=30)
        return self.proc.returncode, self.err_path.read_text(errors="replace")


def start_api(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    db: Path | None = None,
    with_db: bool = True,
) -> ApiProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MOMOBOT_")}
    # Tests name the plugins they want: hotkey_ws would dial out, das (installed, not configured)
    # would raise its "not configured" alert.
    full_env.update({"MOMOBOT_DISABLE_PLUGINS": "hotkey_ws,das", **(env or {})})
    db_args = ["--db", str(db or tmp_path / "journal.db")] if with_db else []
    for _ in range(3):  # a free port another process takes first is tried again with another
        port = free_port()
        # Its output goes to files, never to pipes nobody reads: a serve that logs more than a
        # pipe holds would block in its logging, and the test would take it for a stalled bot.
        err_path = tmp_path / f"serve-{port}.err"
        with (tmp_path / f"serve-{port}.out").open("w") as out, err_path.open("w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "momobot_core.cli", "serve", "--port", str(port), *db_args, *args],
                stdout=out,
                stderr=err,
                text=True,
                env=full_env,
                cwd=tmp_path,
            )
        ours = f"API on http://127.0.0.1:{port}"

        def started(err_path: Path = err_path, ours: str = ours, port: int = port) -> bool:
            # The port answering is not enough: on a busy machine another process may hold it.
            return (
                ours in err_path.read_text(errors="replace")
                and _up(port)
                and "Started server" in (err_path.read_text(errors="replace"))
            )

        wait_until(lambda: started() or proc.poll() is not None, timeout=30)  # noqa: B023
        if proc.poll() is None and started():
            return ApiProcess(proc, f"http://127.0.0.1:{port}", err_path)
        proc.kill()
        proc.communicate(timeout=10)
        if "address already in use" not in err_path.read_text(errors="replace").lower():
            break
    raise AssertionError(f"server did not start: {err_path.read_text(errors='replace')}")


def _up(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
