"""Running a live quote source in a test: on the test's own event loop, as serve runs it on the engine's."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from momobot_core.engine import Engine
from momobot_core.sources import Watchlist


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


def streaming(
    engine: Engine, watchlist: Watchlist, body: Callable[[Any, asyncio.Task[None]], Awaitable[None]]
) -> Any:
    """Run the engine's source on this test's loop (as serve does on the engine's) while ``body`` checks."""
    source = engine.source
    assert source is not None

    async def main() -> None:
        engine.loop = asyncio.get_running_loop()
        task = asyncio.create_task(source.run(engine, watchlist))
        try:
            await body(source, task)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    return source


@contextlib.contextmanager
def fake_server_command(tmp_path: Path, vendor: str, day: Path) -> Iterator[int]:
    """``momobot <vendor> fake-server DAY --speed 0`` as a real process on a free loopback port:
    the port, once it says it listens; stopped after."""
    from hotkey_helpers import free_port, wait_until

    port = free_port()
    err_path = tmp_path / f"{vendor}-fake.err"
    command = [sys.executable, "-m", "momobot_core.cli", vendor, "fake-server", str(day)]
    with err_path.open("w") as err:
        proc = subprocess.Popen([*command, "--port", str(port), "--speed", "0"], stderr=err)
        try:
            assert wait_until(lambda: "stream on ws://" in err_path.read_text(), 30), err_path.read_text()
            yield port
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
