"""The CMD API's lines (momobot_das.protocol), the [das] table, and `momobot das check`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from momobot_core.config import Config, ConfigError
from momobot_das.config import load_das_config
from momobot_das.fake import FakeDas
from momobot_das.protocol import (
    BuyingPower,
    LoginReply,
    Marker,
    OrderAct,
    OrderLine,
    Other,
    PosLine,
    ProtocolError,
    TradeLine,
    cancel_line,
    das_time,
    format_price,
    limit_price,
    on_tick,
    order_line,
    parse,
    stop_line,
)

from conftest import momobot
from hotkey_helpers import free_port

NY = ZoneInfo("America/New_York")


# -- prices on the tick ---------------------------------------------------------------------------


def test_prices_are_written_on_the_tick_never_as_float_noise() -> None:
    assert format_price(on_tick(2.0799999999999996, up=True)) == "2.08"
    assert format_price(on_tick(2.0800000000000003, up=True)) == "2.08"
    assert format_price(on_tick(2.0800000000000003, up=False)) == "2.08"
    assert format_price(on_tick(0.12345, up=True)) == "0.1235"  # below $1: hundredths of a cent
    assert format_price(on_tick(0.12345, up=False)) == "0.1234"
    assert format_price(on_tick(12.345, up=True)) == "12.35"  # a buy stays marketable
    assert format_price(on_tick(12.345, up=False)) == "12.34"  # and so does a sell
    assert format_price(limit_price(2.00, 5, buy=True)) == "2.05"
    assert format_price(limit_price(1.85, 5, buy=False)) == "1.80"
    assert format_price(limit_price(0.03, 5, buy=False)) == "0.0001"  # never zero or below


@given(st.integers(min_value=1, max_value=10_000_000), st.integers(min_value=0, max_value=100))
def test_a_limit_is_always_on_the_tick_and_on_the_right_side(cents: int, offset: int) -> None:
    price = cents / 100  # a float, as quotes arrive
    buy = limit_price(price, offset, buy=True)
    sell = limit_price(price, offset, buy=False)
    exact = Decimal(cents) / 100
    assert buy == exact + Decimal(offset) / 100  # a price on the tick moves by exactly the offset
    assert sell == max(exact - Decimal(offset) / 100, Decimal("0.0001"))
    for value in (buy, sell):
        text = format_price(value)
        assert Decimal(text) == value and len(text.split(".")[1]) == (2 if value >= 1 else 4)


def test_order_lines_carry_their_symbol_route_and_tif() -> None:
    assert (
        order_line(7, "B", "ABCD", "SMAT", 100, Decimal("2.05"))
        == "NEWORDER 7 B ABCD SMAT 100 2.05 TIF=DAY+\r\n"
    )
    assert (
        stop_line(8, "ABCD", "SMAT", 50, Decimal("1.84"))
        == "NEWORDER 8 S ABCD SMAT 50 STOPMKT 1.84 TIF=DAY\r\n"
    )
    assert cancel_line("1234") == "CANCEL 1234\r\n"
    bad_calls: tuple[Callable[[], str], ...] = (
        lambda: order_line(7, "X", "ABCD", "SMAT", 100, Decimal(2)),
        lambda: order_line(0, "B", "ABCD", "SMAT", 100, Decimal(2)),
        lambda: order_line(7, "B", "ABCD", "SMAT", 0, Decimal(2)),
        lambda: order_line(7, "B", "AB CD", "SMAT", 1, Decimal(2)),
        lambda: cancel_line("12 34"),
    )
    for bad in bad_calls:
        with pytest.raises(ValueError):
            bad()


# -- reading lines ----------------------------------------------------------------------------------


def test_every_line_the_plugin_acts_on_is_read() -> None:
    assert parse("#LOGIN SUCCESSED") == LoginReply(True, "#LOGIN SUCCESSED")
    assert parse("#LOGIN FAILED: bad password").ok is False  # type: ignore[union-attr]
    assert parse("#POSEND") == Marker("#POSEND")
    order = parse("%ORDER 52493 586 CIGL B L 100 40 10 2.97 ARCA Partial 09:53:27 0 ACCT USER CMDAPI DAY+")
    assert isinstance(order, OrderLine)
    assert (order.das_id, order.token, order.symbol, order.qty, order.filled, order.final) == (
        "52493",
        586,
        "CIGL",
        100,
        50,
        False,
    )
    assert parse("%ORDER 1 2 CIGL B L 5 0 0 2.97 ARCA Executed 09:53:27").final is True  # type: ignore[union-attr]
    act = parse("%OrderAct 77 Reject B ABCD 100 2.05 SMAT 09:30:01 Insufficient buying power 12")
    assert isinstance(act, OrderAct)
    assert act.rejected and act.notes == "Insufficient buying power" and act.token == 12
    accept = parse("%OrderAct 56 Accept Buy MSFT 1 116.35 COMP 20:14:10 1")
    assert isinstance(accept, OrderAct) and accept.token == 1 and accept.notes == "" and not accept.rejected
    trade = parse("%TRADE 34277 CIGL B 10 3.8 EDUPRO 09:03:38 33998 - 0.00 0.00")
    assert trade == TradeLine("34277", "CIGL", "B", 10, Decimal("3.8"), "EDUPRO", "09:03:38", "33998")
    assert parse("%POS BBLG 2 100 3.50 100 3.50 0.00 09:00:00 -50.00") == PosLine(
        "BBLG", 100, Decimal("3.50")
    )
    assert parse("%POS AAPL 3 100 150.00") == PosLine("AAPL", -100, Decimal("150.00"))  # type 3: short
    assert parse("BP 100000.00 50000.00") == BuyingPower(Decimal("100000.00"), Decimal("50000.00"))
    assert parse("$Quote ABCD ...") == Other("$Quote ABCD ...")


@pytest.mark.parametrize(
    "line",
    [
        "%ORDER 1 2 ABCD B",
        "%ORDER 1 2 ABCD B L many 0 0 2.97 ARCA Accepted 09:00:00",
        "%OrderAct 1 Accept",
        "%TRADE 1 ABCD B 10 -3.8 ARCA 09:00:00 5",
        "%TRADE 1 ABCD B 10 NaN ARCA 09:00:00 5",
        "%POS ABCD",
    ],
)
def test_a_malformed_line_is_a_protocol_error_naming_it(line: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse(line)
    assert line.split(maxsplit=1)[0] in str(raised.value) or "not a" in str(raised.value)


def test_das_times_are_read_in_the_das_pcs_time_zone() -> None:
    now = datetime(2026, 11, 24, 15, 0, 5, tzinfo=UTC)  # 10:00:05 in New York
    assert das_time("09:59:58", NY, now) == datetime(2026, 11, 24, 14, 59, 58, tzinfo=UTC)
    # Read just after midnight there, 23:59 is yesterday's, not tomorrow's.
    after_midnight = datetime(2026, 11, 25, 5, 0, 30, tzinfo=UTC)  # 00:00:30 in New York
    assert das_time("23:59:50", NY, after_midnight) == datetime(2026, 11, 25, 4, 59, 50, tzinfo=UTC)
    with pytest.raises(ProtocolError):
        das_time("9h59", NY, now)


# -- the [das] table --------------------------------------------------------------------------------


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MOMOBOT_DAS_PASSWORD", "pw")
    yield


GOOD = {"user": "trader", "account": "TR1", "route": "SMAT"}


def test_the_das_table_is_read_and_checked(password: None, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_das_config(Config({"das": {**GOOD, "exit_offset": 3, "catastrophic_stop_pct": 8}}))
    assert (config.host, config.port, config.route, config.exit_offset) == ("127.0.0.1", 9910, "SMAT", 3.0)
    assert config.catastrophic_stop_pct == 8 and "pw" not in repr(config)
    monkeypatch.setenv("MOMOBOT_DAS_PORT", "9911")
    assert load_das_config(Config({"das": GOOD})).port == 9911


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"user": "trader"}, "[das] account, route: required"),
        ({**GOOD, "password": "x"}, "[das] password: not read from a file"),
        ({**GOOD, "route": "SM AT"}, "[das] route = 'SM AT'"),
        ({**GOOD, "port": 70000}, "[das] port = 70000"),
        ({**GOOD, "timezone": "Mars/Olympus"}, "[das] timezone = 'Mars/Olympus'"),
        ({**GOOD, "catastrophic_stop_pct": 100}, "[das] catastrophic_stop_pct = 100"),
        ({**GOOD, "exit_offset": -1}, "[das] exit_offset = -1"),
        ({**GOOD, "exit_reprice_s": 0}, "[das] exit_reprice_s = 0"),
        ({**GOOD, "rout": "SMAT"}, "[das] rout: unknown key"),
    ],
)
def test_a_bad_das_table_names_the_key(password: None, table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_das_config(Config({"das": table}))
    assert message in str(raised.value)


def test_without_the_password_variable_start_up_says_which_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOMOBOT_DAS_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="set MOMOBOT_DAS_PASSWORD"):
        load_das_config(Config({"das": GOOD}))


# -- momobot das check -------------------------------------------------------------------------------


def _check(fake_port: int, tmp_path: Path, password: str = "secret") -> tuple[int, str, str]:
    config = tmp_path / "momobot.toml"
    config.write_text(f'[das]\nuser = "trader"\naccount = "TR1234"\nroute = "SMAT"\nport = {fake_port}\n')
    result = momobot("das", "check", "--config", str(config), env={"MOMOBOT_DAS_PASSWORD": password})
    return result.returncode, result.stdout, result.stderr


def test_das_check_reports_buying_power_and_positions_and_sends_no_order(tmp_path: Path) -> None:
    with FakeDas() as fake:
        fake.positions = {"ABCD": 200, "WXYZ": -50}
        code, out, err = _check(fake.port, tmp_path)
        assert code == 0, err
        assert "logged in as trader, account TR1234" in out
        assert "buying power: 100000.00 (overnight 50000.00)" in out
        assert "ABCD" in out and "200" in out and "WXYZ" in out and "-50" in out
        assert "no order was sent" in out
        assert fake.lines("NEWORDER") == [] and fake.lines("CANCEL") == []


def test_das_check_with_a_wrong_password_is_one_line_and_never_shows_it(tmp_path: Path) -> None:
    with FakeDas(echo=True) as fake:
        code, out, err = _check(fake.port, tmp_path, password="hunter22")
    assert code == 2 and "Traceback" not in err
    assert "login refused" in err and "invalid user, password or account" in err
    assert "hunter22" not in out + err


def test_das_check_says_what_it_waited_for_when_the_platform_stays_silent(tmp_path: Path) -> None:
    with FakeDas() as fake:
        fake.ignore_on = lambda line: line == "GET BP"  # no buying power: the rest is reported
        code, out, err = _check(fake.port, tmp_path)
        assert code == 0, err
        assert "buying power: not reported" in out and "no order was sent" in out
        fake.ignore_on = lambda line: line.startswith("LOGIN")  # a platform that answers nothing
        code, out, err = _check(fake.port, tmp_path)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "waited 2 s for an answer to LOGIN, and none came" in err


def test_das_check_with_nothing_listening_says_what_to_check(tmp_path: Path) -> None:
    code, _, err = _check(free_port(), tmp_path)
    assert code == 2 and "Traceback" not in err
    assert "cannot connect" in err and "CMD API" in err


@pytest.mark.parametrize(
    "line",
    [
        "%POS ABCD 2 1e400000",
        "%POS ABCD 2 NaN",
        "%ORDER 1 2 A B L 1e9999999 0 0 1 R Accepted 09:00:00",
        "BP 1e99999",
    ],
)
def test_numbers_no_line_can_make_the_reader_compute_for_long(line: str) -> None:
    with pytest.raises(ProtocolError):
        parse(line)  # at once: a quantity is at most 12 digits, an amount below 10**12


def test_the_password_is_masked_however_a_log_line_quotes_it(tmp_path: Path) -> None:
    from momobot_das.config import DasConfig
    from momobot_das.link import DasLink

    link = DasLink(
        DasConfig(user="u", account="a", route="SMAT", password="Zq9\\pw"), on_message=lambda m: None
    )
    try:
        for text in ("LOGIN u Zq9\\pw a", repr("LOGIN u Zq9\\pw a"), ascii("x Zq9\\pw")):
            assert "pw" not in link.mask(text)
    finally:
        link.close()


@pytest.mark.parametrize(
    ("env", "table", "message"),
    [
        ({"MOMOBOT_DAS_PASSWORD": "pässword"}, GOOD, "MOMOBOT_DAS_PASSWORD: printable ASCII"),
        ({"MOMOBOT_DAS_PASSWORD": "pw"}, {**GOOD, "user": "tràder"}, "[das] user = 'tràder'"),
        (
            {"MOMOBOT_DAS_PASSWORD": "pw"},
            {**GOOD, "connect_timeout": 1e308},
            "[das] connect_timeout = 1e+308",
        ),
        ({"MOMOBOT_DAS_PASSWORD": "pw"}, {**GOOD, "exit_reprice_s": 0.0001}, "[das] exit_reprice_s = 0.0001"),
    ],
)
def test_values_the_link_cannot_use_stop_start_up(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], table: dict[str, object], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as raised:
        load_das_config(Config({"das": table}))
    assert message in str(raised.value) and "pässword" not in str(raised.value)


@pytest.mark.parametrize("kind", ["L", "M", "S", "T"])
@pytest.mark.parametrize("side", ["B", "S", "SS"])
def test_both_order_layouts_are_read_with_every_one_letter_type(kind: str, side: str) -> None:
    # Public clients read the type as one letter: L limit, M market, S stop market, T stop limit.
    # A sell stop in the older layout ("S S") must not be taken for the newer one.
    old = parse(f"%ORDER 81375 BBLG {side} {kind} 100 40 2.88 ARCA Accepted 13:00:40 0 ACCT USER")
    new = parse(
        f"%ORDER 81375 794 BBLG {side} {kind} 100 40 10 2.88 ARCA Accepted 13:00:40 0 ACCT USER Hotkey"
    )
    assert isinstance(old, OrderLine) and isinstance(new, OrderLine)
    assert (old.token, old.symbol, old.side, old.kind, old.qty, old.leaves, old.cancelled) == (
        None,
        "BBLG",
        side,
        kind,
        100,
        40,
        0,
    )
    assert (new.token, new.symbol, new.side, new.kind, new.qty, new.leaves, new.cancelled) == (
        794,
        "BBLG",
        side,
        kind,
        100,
        40,
        10,
    )
    assert old.price == new.price == Decimal("2.88") and old.route == new.route == "ARCA"
    # Tickers that look like sides (B, S) in the newer layout.
    odd = parse(f"%ORDER 9 12 S {side} {kind} 5 0 0 1.50 ARCA Executed 09:00:00")
    assert isinstance(odd, OrderLine) and (odd.token, odd.symbol, odd.side) == (12, "S", side)


@pytest.mark.parametrize("line", ["%POS BBLG X 100 3.50", "%POS BBLG L -100 3.50"])
def test_a_position_line_of_no_known_type_or_a_negative_qty_is_never_guessed(line: str) -> None:
    with pytest.raises(ProtocolError):
        parse(line)


def test_position_lines_read_long_and_short_type_letters() -> None:
    assert parse("%POS BBLG L 100 3.50 100 3.50 0.00 09:00:00 -50.00") == PosLine(
        "BBLG", 100, Decimal("3.50")
    )
    assert parse("%POS BBLG S 100 3.50") == PosLine("BBLG", -100, Decimal("3.50"))


class _Session:
    """A plain CMD API client on a socket: what a third-party client sends, line by line."""

    def __init__(self, port: int) -> None:
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def until(self, last: str) -> list[str]:
        """Lines up to and including the first that starts with ``last``."""
        lines: list[str] = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError(f"closed after {lines}")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(raw.decode())
            if lines[-1].startswith(last):
                return lines

    def closed(self) -> bool:
        return self.sock.recv(1) == b""


def test_the_fake_answers_the_commands_public_clients_use() -> None:
    with FakeDas() as fake:
        fake.fill_buys = False
        session = _Session(fake.port)
        session.send(f"LOGIN {fake.user} {fake.password} {fake.account} 0")  # with the watch flag
        session.until("#TradeEnd")
        session.send("NEWORDER 7 B ABCD SMAT 100 2.05 TIF=DAY+")
        order = parse(session.until("%ORDER")[-1])
        assert isinstance(order, OrderLine) and order.kind == "L" and order.token == 7
        session.send("NEWORDER 8 S WXYZ SMAT 50 STOPMKT 1.84 TIF=DAY")
        stop = parse(session.until("%ORDER")[-1])
        assert isinstance(stop, OrderLine) and stop.kind == "S" and stop.side == "S"
        session.until("%OrderAct")
        session.send("GET ORDERS")
        listed = session.until("#OrderEnd")
        assert listed[0].startswith("#Order") and sum(line.startswith("%ORDER") for line in listed) == 2
        fake.fill(order.das_id, 100)
        session.until("%POS")
        session.send("GET POSITIONS")
        positions = session.until("#POSEND")
        assert any(line.startswith("%POS ABCD L 100") for line in positions)
        session.send("GET TRADES")
        trades = session.until("#TradeEnd")
        assert sum(line.startswith("%TRADE") for line in trades) == 1
        session.send("CANCELALL")
        cancelled = session.until("%OrderAct")
        assert parse(cancelled[-1]).action == "Canceled"  # type: ignore[union-attr]
        assert fake.wait_for(lambda: not fake.working())
        session.send("ECHO ON")
        session.send("GET BP")
        assert session.until("BP")[-2:] == ["GET BP", f"BP {fake.buying_power} {fake.buying_power / 2}"]
        other = _Session(fake.port)  # echo is each session's own
        other.send(f"LOGIN {fake.user} {fake.password} {fake.account}")
        other.until("#TradeEnd")
        other.send("GET  BP")
        assert other.until("BP") == [f"BP {fake.buying_power} {fake.buying_power / 2}"]
        other.send("GET BP \xff")
        assert other.until("INVALID")[-1].startswith("INVALID COMMAND")  # a byte no ASCII has
        other.send("NEWORDER 9 B QQ\u00e9 SMAT 100 1.00 TIF=DAY")
        assert " Reject " in other.until("%OrderAct")[-1]  # not a ticker: refused, session up
        session.send("ECHO OFF")
        assert session.until("ECHO OFF") == ["ECHO OFF"]  # echoed: echo was on when it came
        session.sock.sendall(b"QUIT\r\nNEWORDER 5 B QQQQ SMAT 100 1.00 TIF=DAY\r\n")
        assert session.closed()
        session.sock.close()
        other.sock.close()
        assert not any(line.startswith("NEWORDER 5") for _, line in fake.received)  # after QUIT
        assert "INVALID COMMAND" not in "\n".join(line for _, line in fake.received)
