"""Alerts and the hand-off to the engine's thread, on their own: no engine."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from momobot_core.alerts import Alerts
from momobot_core.errors import TradeRefused
from momobot_core.journal import Journal
from momobot_core.submit import SUBMIT_QUEUE, SubmitQueue


def test_an_alert_raised_on_another_thread_is_published_on_the_owners_loop(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    heard: list[tuple[str, str, int]] = []
    alerts = Alerts(journal, lambda hook, alert: heard.append((hook, alert.kind, threading.get_ident())))

    async def main() -> None:
        alerts.owner = threading.get_ident()
        alerts.loop = asyncio.get_running_loop()
        alerts.tell("mine", "on the owner's thread")
        thread = threading.Thread(target=alerts.tell, args=("theirs", "from a plugin's thread"))
        thread.start()
        thread.join()
        while len(heard) < 2:  # the loop runs the drain it was handed
            await asyncio.sleep(0)

    asyncio.run(main())
    owner = alerts.owner
    assert heard == [("on_alert", "mine", owner), ("on_alert", "theirs", owner)]
    assert [a.kind for a in alerts.kept] == ["mine", "theirs"]
    since = datetime.now(UTC) - timedelta(hours=1)
    assert [kind for kind, *_ in journal.alerts_since(since)] == ["mine", "theirs"]


def test_a_restart_shows_todays_earlier_alerts_without_raising_them_again(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    first = Alerts(journal, lambda *_, **__: None)
    first.tell("halted", "the kill switch was pressed")
    heard: list[object] = []
    second = Alerts(journal, lambda *a, **k: heard.append(k))
    second.restore(datetime.now(UTC), UTC)
    assert [a.message for a in second.earlier] == ["the kill switch was pressed"] and heard == []
    second.new_day()
    assert second.earlier == [] and list(second.kept) == []


def test_submitted_events_are_applied_in_order_and_a_full_queue_refuses_and_tells() -> None:
    applied: list[object] = []
    told: list[str] = []

    def apply(event: object) -> None:
        if event == "bad":
            raise TradeRefused("refused on the engine's thread")
        applied.append(event)

    queue = SubmitQueue(apply, lambda kind, message: told.append(kind))
    assert queue.submit(1) and queue.submit("bad") and queue.submit(2)
    queue.drain()  # a refused event is logged, the rest go on
    assert applied == [1, 2] and not queue
    queue.waiting.extend(range(SUBMIT_QUEUE))
    assert queue.submit("one too many") is False
    assert told == ["queue_overflow"]
