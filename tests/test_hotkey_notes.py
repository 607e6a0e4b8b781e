"""hotkey_ws's notes: what the trading path notes, the link's thread says later, with the time
it was noted."""

from __future__ import annotations

import logging
import time

import pytest

from hotkey_ws.notes import Notes


def test_a_log_line_carries_the_time_it_was_noted_not_the_time_it_was_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    notes = Notes()
    before = time.time()
    notes.log(logging.INFO, "[Hotkey] Sent: %s", "buy_ask")
    after = time.time()
    while time.time() <= after:  # the I/O thread writes it a moment later
        pass
    with caplog.at_level(logging.INFO, logger="momobot.hotkey"):
        notes.emit()
    [record] = [r for r in caplog.records if r.name == "momobot.hotkey"]
    assert record.getMessage() == "[Hotkey] Sent: buy_ask"
    assert before <= record.created <= after
    # relativeCreated moved back by the same step (its base is logging's own).
    now = logging.getLogger("momobot.hotkey").makeRecord("x", logging.INFO, "", 0, "", (), None)
    moved = (now.created - record.created) * 1000
    assert abs((now.relativeCreated - record.relativeCreated) - moved) < 1e-3


def test_a_line_below_the_loggers_level_is_not_made(caplog: pytest.LogCaptureFixture) -> None:
    notes = Notes()
    notes.log(logging.DEBUG, "quiet %s", "x")
    with caplog.at_level(logging.INFO, logger="momobot.hotkey"):
        notes.emit()
    assert not [r for r in caplog.records if r.name == "momobot.hotkey"]
