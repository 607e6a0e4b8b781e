"""Running a live quote source in a test: on the test's own event loop, as serve runs it on the engine's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
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
