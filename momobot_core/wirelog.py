"""What sending plugins actually wrote to the outside world, and what a crash cut short.

A plugin that writes to the outside world (hotkey_ws) logs each write to
``<db>.wire`` with one ``write`` system call: cheap enough for the trading
path, safe from any thread, and it survives a killed process. The journal
folds the file into its ``wire`` table at each start and clean exit; the
sequences that did not all go out are reported once, at the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs


@attrs.frozen
class CutSequence:
    """A plugin's command sequence that did not all go out: cut by a crash, or an exit dropped."""

    plugin: str
    trade_id: str
    symbol: str
    event: str
    sent: tuple[str, ...]
    unsent: tuple[str, ...]
    #: An exit the plugin gave up on (its TTL, a shutdown): the position must be closed by hand.
    dropped_exit: bool = False


class WireLog:
    """Append-only record of what one plugin actually wrote to the outside world.

    ``write`` is one ``write(2)`` of one line to an ``O_APPEND`` file: safe
    from any thread, survives a killed process, and costs a few microseconds.
    Records are dicts with at least ``batch`` (the sequence's id) and
    ``status`` (``queued`` with ``commands``; ``sent`` with ``command``;
    ``done``, ``dropped`` or ``cut`` when the sequence ended).
    """

    def __init__(self, fd: int | None, plugin: str) -> None:
        self._fd = fd
        self.plugin = plugin

    @property
    def enabled(self) -> bool:
        return self._fd is not None

    def write(self, record: Mapping[str, Any]) -> None:
        self.write_all((record,))

    def write_all(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Several records in one ``write(2)``: what one event wrote, logged in one go."""
        fd = self._fd
        if fd is None:
            return
        text = "".join(
            json.dumps({"plugin": self.plugin, **record}, separators=(",", ":")) + "\n" for record in records
        )
        if text:
            with contextlib.suppress(OSError):  # the wire must never stop for its log
                os.write(fd, text.encode())


def cut_sequences(records: list[dict[str, Any]]) -> list[CutSequence]:
    batches: dict[str, dict[str, Any]] = {}
    for record in records:
        batch = batches.setdefault(str(record["batch"]), {"sent": [], "ended": None})
        status = record["status"]
        if status == "queued":
            batch["queued"] = record
        elif status == "sent":
            batch["sent"].append(str(record.get("command")))
        else:
            batch["ended"] = status
    cut = []
    for batch in batches.values():
        queued = batch.get("queued")
        dropped_exit = bool(queued and queued.get("exit")) and batch["ended"] in ("dropped", "cut")
        if queued is None or (batch["ended"] is not None and not dropped_exit):
            continue
        commands = tuple(str(c) for c in queued.get("commands", ()))
        sent = tuple(batch["sent"])
        cut.append(
            CutSequence(
                plugin=str(queued.get("plugin")),
                trade_id=str(queued.get("trade_id")),
                symbol=str(queued.get("symbol")),
                event=str(queued.get("event")),
                sent=sent,
                unsent=commands[len(sent) :],
                dropped_exit=dropped_exit,
            )
        )
    return cut
