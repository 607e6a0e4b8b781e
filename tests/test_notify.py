"""The notify plugin with real receivers on loopback: a JSON webhook (HTTP) and an SMTP server
(aiosmtpd) take what apprise sends; bursts batch, a notifier that is down is retried and told
once, secrets never show, and ``momobot notify test`` says which URL worked."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from momobot_notify.plugin import NotifyPlugin, panel_html
from notify_helpers import Smtp, Webhook

from momobot_core import hookimpl
from momobot_core.config import Config, ConfigError
from momobot_core.engine import Engine
from momobot_core.journal import Journal
from momobot_core.models import Fill, Quote

from conftest import make_hooks, momobot
from hotkey_helpers import free_port, wait_until


def _engine(urls: list[str], mode: str = "live", **notify: Any) -> tuple[Engine, NotifyPlugin]:
    plugin = NotifyPlugin()
    config = Config(tables={"notify": {"urls": urls, "min_interval_s": 0, "retry_s": 0.05, **notify}})
    engine = Engine(config=config, hooks=make_hooks(plugin), journal=Journal(), mode=mode)
    engine.start()
    return engine, plugin


def _quote(engine: Engine, bid: float, ask: float, symbol: str = "ABCD") -> None:
    assert engine.on_quote(Quote(symbol, datetime.now(UTC), bid, ask, bid))


def _round_trip(engine: Engine) -> None:
    _quote(engine, 1.99, 2.00)
    engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
    _quote(engine, 2.20, 2.21)  # TP1: 50 at 2.21
    _quote(engine, 2.40, 2.41)  # TP2: 50 at 2.41


def test_a_closed_trade_reaches_the_webhook_with_its_pnl_and_r() -> None:
    with Webhook() as hook:
        engine, _ = _engine([hook.url()])
        _round_trip(engine)
        assert wait_until(lambda: any("Closed ABCD" in b for b in hook.bodies()))
        (closed,) = [b for b in hook.bodies() if "Closed ABCD" in b]
        # 50 x 0.21 + 50 x 0.41 = 31.00 on a risk of 100 x 0.10 = 10.00: 3.1R
        assert "Closed ABCD (tp2): 100 bought at 2.00, last sold at 2.41: P&L +$31.00 (+3.1R)" in closed
        engine.shutdown()


def _behind_a_held_send(hook: Webhook, engine: Engine, texts: list[str]) -> list[str]:
    """Alert ``first``; while its message is on the wire unanswered, alert each of ``texts``;
    then answer: the lines of the second message."""
    hook.hold()
    engine.alert("resumed", "first")
    assert hook.arrived.wait(10)
    for text in texts:
        engine.alert("resumed", text)
    hook.release()
    assert wait_until(lambda: len(hook.received) == 2)
    return hook.bodies()[1].splitlines()


def test_a_burst_goes_as_one_message_never_dropped_nor_one_per_notice() -> None:
    with Webhook() as hook:
        engine, plugin = _engine([hook.url()], min_interval_s=0.2, min_level="info")
        burst = _behind_a_held_send(hook, engine, [f"burst {n}" for n in range(20)])
        assert "first" in hook.bodies()[0]
        assert burst == [f"INFO resumed: burst {n}" for n in range(20)]
        assert hook.received[1]["title"] == "MomoBot: 20 notices"
        assert wait_until(lambda: plugin.status()[0]["notices_sent"] == 21)  # counted once answered
        assert plugin.status()[0]["dropped"] == 0
        engine.shutdown()


def test_a_full_queue_drops_the_oldest_and_the_next_message_says_how_many() -> None:
    with Webhook() as hook:
        engine, plugin = _engine([hook.url()], min_level="info", queue_size=5)
        lines = _behind_a_held_send(hook, engine, [f"n{n}" for n in range(8)])
        assert lines == [
            *(f"INFO resumed: n{n}" for n in range(3, 8)),
            "(3 earlier notices dropped: too many waited)",
        ]
        assert plugin.status()[0]["dropped"] == 3
        engine.shutdown()


def test_a_notifier_that_is_down_is_retried_told_once_and_gets_what_waited_when_back() -> None:
    port = free_port()  # nothing listens here yet
    engine, plugin = _engine([f"json://127.0.0.1:{port}/hook"], retry_s=0.05, retry_max_s=0.1)
    _round_trip(engine)
    assert wait_until(lambda: plugin.status()[0]["failures"] >= 3)
    status = plugin.status()[0]
    assert (
        status["state"] == "down" and status["waiting"] >= 1 and "Connection" in (status["last_error"] or "")
    )
    engine.tick()  # alerts from other threads are raised on the engine's thread
    kinds = [alert.kind for alert in engine.alerts]
    assert kinds.count("notify_down") == 1  # told once, however many tries failed
    # Trading went on meanwhile, and goes on.
    _quote(engine, 5.00, 5.01, "WXYZ")
    engine.open_trade("WXYZ", 10, 5.2, 5.4, 4.9)
    engine.close_trade("WXYZ")
    with Webhook(port) as hook:
        assert wait_until(lambda: any("Closed WXYZ" in b for b in hook.bodies()))
        assert "Closed ABCD" in hook.bodies()[0]  # what waited went first, in one message

        def restored() -> bool:
            engine.tick()  # raises what other threads told, on this (the engine's) thread
            return "notify_restored" in [a.kind for a in engine.alerts]

        assert wait_until(restored)
        assert wait_until(lambda: plugin.status()[0]["state"] == "up")
        engine.shutdown()


def test_e_mail_reaches_a_local_smtp_server() -> None:
    with Smtp() as smtp:
        engine, _ = _engine([smtp.url()])
        engine.kill()
        assert wait_until(lambda: bool(smtp.messages))
        sender, to, text = smtp.messages[0]
        assert (sender, to) == ("bot@example.com", ["trader@example.com"])
        assert "KILL: the kill switch was pressed" in text
        engine.shutdown()


def test_toggles_and_the_minimum_level_choose_what_is_sent() -> None:
    with Webhook() as hook:
        engine, _ = _engine([hook.url()], closed=False, min_level="critical")
        _round_trip(engine)
        engine.alert("stale_quotes", "a warning: below critical, not sent")
        engine.alert("journal_error", "a critical one")
        assert wait_until(lambda: bool(hook.received))
        engine.shutdown()  # flushes: nothing else was queued
        text = "\n".join(hook.bodies())
        assert "CRITICAL journal_error: a critical one" in text
        assert "Closed" not in text and "stale_quotes" not in text
        types = {r["message"].split(":")[0]: r["type"] for r in hook.received}
        assert types == {"CRITICAL journal_error": "failure", "Summary": "info"}  # critical: the alarm


def test_a_fill_is_told_beside_the_model_price(tmp_path: Path) -> None:
    with Webhook() as hook:
        plugin = NotifyPlugin()
        config = Config(tables={"notify": {"urls": [hook.url()], "min_interval_s": 0}})
        engine = Engine(
            config=config, hooks=make_hooks(plugin), journal=Journal(tmp_path / "j.db"), mode="live"
        )
        engine.start()
        _quote(engine, 1.99, 2.00)
        trade = engine.open_trade("ABCD", 100, 2.20, 2.40, 1.90)
        (entry,) = [r for r in engine.journal.executions() if r["trade_id"] == trade.id]  # type: ignore[union-attr]
        engine.apply(Fill(str(entry["order_id"]), 100, 2.02, datetime.now(UTC), "x1"))
        assert wait_until(lambda: any("Fill:" in b for b in hook.bodies()))
        assert "Fill: BUY 100 ABCD at 2.02 (model 2.00), entry" in "\n".join(hook.bodies())
        engine.shutdown()


def test_the_days_summary_goes_at_shutdown_after_trades() -> None:
    with Webhook() as hook:
        engine, _ = _engine([hook.url()])
        _round_trip(engine)
        engine.shutdown()
        assert wait_until(lambda: any("Summary:" in b for b in hook.bodies()))
        summary = next(b for b in hook.bodies() if "Summary:" in b)
        assert "realised P&L +$31.00" in summary and "1 trade closed this run (1 won, 0 lost)" in summary


def test_a_replay_sends_nothing_unless_asked() -> None:
    with Webhook() as hook:
        engine, plugin = _engine([hook.url()], mode="replay")
        assert plugin.channels == []
        engine.shutdown()
        engine, plugin = _engine([hook.url()], mode="replay", replay=True)
        engine.alert("journal_error", "sent from a replay when asked")
        assert wait_until(lambda: bool(hook.received))
        engine.shutdown()


SECRET = "S3cretPassw0rd"
TOKEN = "T0kenInThePath42"


def test_secrets_in_urls_never_reach_logs_status_or_the_panel(caplog: pytest.LogCaptureFixture) -> None:
    down = free_port()
    with Webhook() as hook, caplog.at_level(logging.DEBUG):
        urls = [
            hook.url(f"hook/{TOKEN}", auth=f"trader:{SECRET}"),
            f"json://bot:{SECRET}@127.0.0.1:{down}/{TOKEN}",
        ]
        engine, plugin = _engine(urls, retry_s=0.05)
        engine.alert("journal_error", "something")
        assert wait_until(lambda: bool(hook.received) and plugin.status()[1]["failures"] >= 2)
        assert hook.auth[0] == f"trader:{SECRET}"  # the secret is used, where it belongs
        engine.tick()
        shown = repr(plugin.status()) + panel_html(plugin.status()) + repr([a.message for a in engine.alerts])
        engine.shutdown()
    assert plugin.status() == []
    assert SECRET not in caplog.text and TOKEN not in caplog.text
    assert SECRET not in shown and TOKEN not in shown
    assert f"json://***@127.0.0.1:{hook.port}/***" in shown


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"urls": ["nosuchservice://x"]}, "[notify] urls: nosuchservice://*** is not a notification URL"),
        ({"urls": "json://127.0.0.1:1/x", "min_level": "loud"}, "must be one of info, warning, critical"),
        ({"urls": [1]}, "[notify] urls: must be a list of apprise URLs"),
        ({"summary_at": "4pm"}, "[notify] summary_at = '4pm': must be a time of day written \"HH:MM\""),
        ({"colour": "red"}, "[notify] colour: unknown key"),
        ({"queue_size": 0}, "[notify] queue_size = 0: must be >= 1"),
        ({"min_interval_s": 1e10}, "[notify] min_interval_s = 1e+10: must be at most 3600"),
        (
            {"urls": ["tgram:/123456789:AAHsecretTOKEN/987"]},
            "[notify] urls: <not a URL> is not a notification",
        ),
    ],
)
def test_bad_configuration_names_the_key_and_never_a_secret(table: dict[str, Any], message: str) -> None:
    plugin = NotifyPlugin()
    engine = Engine(config=Config(tables={"notify": table}), hooks=make_hooks(plugin), mode="live")
    with pytest.raises(ConfigError) as exc:
        engine.start()
    assert message in str(exc.value) and "secretTOKEN" not in str(exc.value)


def test_a_blank_urls_variable_is_an_error_not_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOMOBOT_NOTIFY_URLS", "  ")
    engine = Engine(
        config=Config(tables={"notify": {"urls": ["json://127.0.0.1:1/x"]}}), hooks=make_hooks(NotifyPlugin())
    )
    with pytest.raises(ConfigError, match="MOMOBOT_NOTIFY_URLS is set but empty"):
        engine.start()


@pytest.mark.parametrize(
    ("url", "shown_as", "hidden"),
    [
        ("discord://123456789012345678/AbCdEfToken", "discord://***", ["123456789012345678", "AbCdEfToken"]),
        ("json://user:Sekr1t@127.0.0.1:99999/x", "json://***@127.0.0.1/***", ["Sekr1t"]),
        ("tgram:/123456789:AAHsecret/987", "<not a URL>", ["123456789:AAHsecret"]),
        (
            "mailtos://me:app-pass@smtp.example.com?to=me@example.com",
            "mailtos://***@smtp.example.com?***",
            ["app-pass"],
        ),
    ],
)
def test_what_is_shown_of_a_url_hides_each_credential(url: str, shown_as: str, hidden: list[str]) -> None:
    from momobot_notify.secrets import redact, secrets_of, shown

    assert shown(url) == shown_as
    for secret in hidden:
        assert secret not in shown(url)
        assert secret not in redact(f"failed to send to {url}", secrets_of(url))


def test_notify_test_sends_to_each_url_and_says_which_worked(tmp_path: Path) -> None:
    down = free_port()
    with Webhook() as hook, Smtp() as smtp:
        config = tmp_path / "momobot.toml"
        urls = [hook.url(), smtp.url(), f"json://127.0.0.1:{down}/{TOKEN}"]
        config.write_text("[notify]\nurls = [" + ", ".join(f"'{u}'" for u in urls) + "]\n")
        result = momobot("notify", "test", "--config", str(config))
        assert result.returncode == 1, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == f"ok      json://127.0.0.1:{hook.port}/***"
        assert lines[1] == f"ok      mailto://127.0.0.1:{smtp.port}?***"
        assert lines[2].startswith(f"FAILED  json://127.0.0.1:{down}/***: ")
        assert lines[3] == "2 of 3 worked"
        assert TOKEN not in result.stdout + result.stderr
        assert "MomoBot test notification" in hook.bodies()[0] and smtp.messages
        only_good = momobot(
            "notify", "test", "--config", str(config), env={"MOMOBOT_NOTIFY_URLS": hook.url()}
        )
        assert only_good.returncode == 0 and "1 of 1 worked" in only_good.stdout
    none = momobot("notify", "test", env={"MOMOBOT_CONFIG": ""})
    assert none.returncode == 2 and "no [notify] urls configured" in none.stderr


def test_serve_sends_closed_trades_shows_each_url_masked_on_ping_and_the_page(tmp_path: Path) -> None:
    from api_helpers import start_api

    down = free_port()
    with Webhook() as hook:
        urls = f"{hook.url(f'hook/{TOKEN}', auth=f'trader:{SECRET}')} json://bot:{SECRET}@127.0.0.1:{down}/{TOKEN}"
        env = {
            "MOMOBOT_DISABLE_PLUGINS": "hotkey_ws,das",
            "MOMOBOT_NOTIFY_URLS": urls,
            "MOMOBOT_NOTIFY_MIN_INTERVAL_S": "0",
            "MOMOBOT_NOTIFY_RETRY_S": "0.05",
        }
        server = start_api(tmp_path, env=env)
        client = server.client
        try:
            client.post("/quotes", json={"symbol": "ABCD", "bid": 1.99, "ask": 2.00})
            opened = client.post(
                "/trades", json={"symbol": "ABCD", "qty": 100, "tp1": 2.2, "tp2": 2.4, "stop": 1.9}
            )
            assert opened.status_code == 201, opened.text
            assert client.post("/close-position", json={"symbol": "ABCD"}).status_code == 200
            assert wait_until(lambda: any("Closed ABCD (manual)" in b for b in hook.bodies()))
            assert wait_until(lambda: client.get("/ping").json()["plugins"]["notify"][1]["failures"] >= 1)
            ping = client.get("/ping").json()["plugins"]["notify"]
            assert [row["url"] for row in ping] == [
                f"json://***@127.0.0.1:{hook.port}/***",
                f"json://***@127.0.0.1:{down}/***",
            ]
            assert ping[0]["state"] == "up" and ping[1]["state"] == "down"
            assert wait_until(lambda: any("notify_down" in b for b in hook.bodies()))  # told by the other URL
            page = client.get("/").text + client.get("/ui/notify").text
            assert "Notifications" in page and f"127.0.0.1:{down}/***" in page
            seen = page + repr(ping) + client.get("/alerts").text
        finally:
            code, err = server.stop()
        assert code == 0, err
    assert SECRET not in seen and TOKEN not in seen
    assert SECRET not in err and TOKEN not in err


def test_a_hung_service_holds_its_own_url_only_and_never_the_exit() -> None:
    import socket
    import threading

    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)  # accepts (the kernel does) and never answers
    port = hung.getsockname()[1]
    with Webhook() as hook:
        engine, plugin = _engine([f"json://127.0.0.1:{port}/hook", hook.url()])
        for n in range(3):
            engine.alert("journal_error", f"n{n}")
        assert wait_until(lambda: sum(b.count("journal_error") for b in hook.bodies()) == 3)
        done = threading.Event()

        def stop() -> None:
            engine.shutdown()
            done.set()

        threading.Thread(target=stop, daemon=True).start()
        assert done.wait(30)  # bounded: the hung send is left to its own (daemon) thread
        assert plugin.status() == []
    hung.close()


def test_two_urls_that_look_alike_masked_still_tell_each_other() -> None:
    with Webhook() as hook:
        hook.fail_paths = {"/b"}
        engine, plugin = _engine([hook.url("a"), hook.url("b")], retry_s=0.05)
        assert plugin.channels[0].shown == plugin.channels[1].shown  # both json://127.0.0.1:P/***
        engine.alert("journal_error", "x")

        def told() -> bool:
            engine.tick()  # raises what the channel's thread told, on this (the engine's) thread
            return any("notify_down" in b for b in hook.bodies())

        assert wait_until(told)
        engine.shutdown()


def test_the_summary_is_due_at_the_days_own_close_in_new_york() -> None:
    from momobot_core.market import NEW_YORK

    with Webhook() as hook:
        engine, plugin = _engine([hook.url()])
        wednesday_night = datetime(2026, 11, 25, 21, 0, tzinfo=NEW_YORK)  # Thanksgiving next: closed
        assert plugin._next_summary(wednesday_night) == datetime(2026, 11, 27, 13, 0, tzinfo=NEW_YORK)
        monday = datetime(2026, 12, 7, 10, 0, tzinfo=NEW_YORK)
        assert plugin._next_summary(monday) == datetime(2026, 12, 7, 16, 0, tzinfo=NEW_YORK)
        engine.shutdown()
        engine, plugin = _engine([hook.url()], summary_at="16:05")
        assert plugin._next_summary(monday) == datetime(2026, 12, 7, 16, 5, tzinfo=NEW_YORK)
        engine.shutdown()


class _ToldWhileStopping:
    """Another plugin that raises an alert from its own shutdown (hotkey_ws's exit_dropped)."""

    @hookimpl
    def on_shutdown(self, bot: Engine) -> None:
        bot.alert("exit_dropped", "kill: 'cancel_all', 'flatten_all' NOT sent (not sent before shutdown)")


def test_an_alert_raised_while_the_others_stop_still_reaches_the_phone() -> None:
    with Webhook() as hook:
        plugin = NotifyPlugin()
        config = Config(tables={"notify": {"urls": [hook.url()], "min_interval_s": 0}})
        engine = Engine(
            config=config, hooks=make_hooks(plugin, _ToldWhileStopping()), journal=Journal(), mode="live"
        )
        engine.start()
        engine.shutdown()
        assert any("CRITICAL exit_dropped: kill" in b for b in hook.bodies())
        assert [r["type"] for r in hook.received] == ["failure"]


def test_summary_at_skips_a_day_the_market_is_closed() -> None:
    from momobot_core.market import NEW_YORK

    with Webhook() as hook:
        engine, plugin = _engine([hook.url()], summary_at="16:05")
        saturday = datetime(2026, 12, 5, 10, 0, tzinfo=NEW_YORK)
        assert plugin._next_summary(saturday) == datetime(2026, 12, 7, 16, 5, tzinfo=NEW_YORK)
        engine.shutdown()


def test_a_misspelt_notify_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOMOBOT_NOTIFY_MIN_LEVLE", "critical")
    engine = Engine(config=Config(tables={"notify": {}}), hooks=make_hooks(NotifyPlugin()), mode="live")
    with pytest.raises(ConfigError, match="MOMOBOT_NOTIFY_MIN_LEVLE: no \\[notify\\] key of that name"):
        engine.start()


def test_apprises_own_short_form_of_a_secret_is_blanked_too() -> None:
    from momobot_notify.secrets import redact, secrets_of

    url = "jsn://hookuser:SuperSecretPw@127.0.0.1:18080/x"
    line = "Unparseable URL jsn://***:S...w@1...1:18080/***"
    assert "S...w" not in redact(line, secrets_of(url))
