"""The voice plugin, tested the way a plugin author would: with momobot_core.testing.

Speech is rendered to WAV files by the real espeak-ng.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

import pytest

from momobot_core.config import ConfigError
from momobot_core.testing import Script, run_script
from momobot_voice.plugin import VoicePlugin, entry_sentence, exit_sentence

ESPEAK = shutil.which("espeak-ng")
# On CI the speech engine is installed by .ci/run: there these tests must run, never skip.
needs_espeak = pytest.mark.skipif(
    ESPEAK is None and not os.environ.get("CI"),
    reason="espeak-ng is not installed (apt-get install espeak-ng)",
)


def session() -> Script:
    return (
        Script()
        .quote("ABCD", ask=2.00)
        .open("ABCD", qty=100, tp1=2.20, tp2=2.40, stop=1.90)
        .quote("ABCD", ask=2.21)  # TP1
        .quote("ABCD", ask=2.41)  # TP2
        .quote("EFGH", ask=5.00)
        .open("EFGH", qty=10, tp1=5.5, tp2=6.0, stop=4.8)
        .quote("EFGH", ask=4.80, bid=4.78, last=4.79)  # stop
        .quote("MNOP", ask=3.00)
        .open("MNOP", qty=10, tp1=3.3, tp2=3.6, stop=2.8)
        .quote("MNOP", ask=3.10, bid=3.08)
        .close("MNOP")
    )  # manual


EXPECTED = [
    "New trade taken for ABCD at 2.00",
    "Take profit one for ABCD at 2.21: half sold, stop to break even",
    "Trade closed for ABCD at 2.41 due to take profit two",
    "New trade taken for EFGH at 5.00",
    "Trade closed for EFGH at 4.78 due to stop loss",
    "New trade taken for MNOP at 3.00",
    "Trade closed for MNOP at 3.08 due to manual close",
]


@needs_espeak
def test_every_trade_event_is_spoken_to_a_file(tmp_path: Path) -> None:
    plugin = VoicePlugin()
    out = tmp_path / "speech"
    result = run_script(session(), [plugin], config={"voice": {"output_dir": str(out)}})
    assert [leg.reason for leg in result.legs] == ["tp1", "tp2", "stop", "manual"]
    files = sorted(out.glob("*.wav"))
    assert len(files) == len(EXPECTED)
    for file in files:
        data = file.read_bytes()
        assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
        assert len(data) > 10_000  # a spoken sentence, not an empty header


@needs_espeak
def test_sentences_say_what_happened_in_order(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="momobot.voice"):
        run_script(session(), [VoicePlugin()], config={"voice": {"output_dir": str(tmp_path)}})
    said = [
        r.getMessage().removeprefix("[Voice] ")
        for r in caplog.records
        if r.getMessage().startswith("[Voice] ") and "engine" not in r.getMessage()
    ]
    assert said == EXPECTED


def test_sentence_wording() -> None:
    assert entry_sentence("ABCD", 1.23) == "New trade taken for ABCD at 1.23"
    assert exit_sentence("ABCD", 1.35, "tp1") == (
        "Take profit one for ABCD at 1.35: half sold, stop to break even"
    )
    assert exit_sentence("XY", 0.0412, "stop") == "Trade closed for XY at 0.0412 due to stop loss"


def test_missing_speech_engine_is_reported_once_and_trading_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="momobot.voice"):
        result = run_script(
            session(), [VoicePlugin()], config={"voice": {"command": "no-such-speech-engine"}}
        )
    warnings = [r.getMessage() for r in caplog.records if r.name == "momobot.voice"]
    assert len(warnings) == 1 and "no speech engine found (no-such-speech-engine)" in warnings[0]
    assert len(result.legs) == 4 and result.errors == []


def test_failing_speech_engine_is_reported_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = tmp_path / "broken-tts"
    broken.write_text("#!/bin/sh\necho 'audio device busy' >&2\nexit 3\n")
    broken.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="momobot.voice"):
        result = run_script(session(), [VoicePlugin()], config={"voice": {"command": str(broken)}})
    warnings = [r.getMessage() for r in caplog.records if r.name == "momobot.voice"]
    assert len(warnings) == 1 and "audio device busy" in warnings[0]
    assert len(result.legs) == 4


def test_speech_never_blocks_the_engine(tmp_path: Path) -> None:
    # Speech that lasts until the test lets it end: nothing of it outlives the test (a phrase
    # still being spoken would land in a later test's log).
    gate = tmp_path / "speaking"
    gate.touch()
    slow = tmp_path / "slow-tts"
    slow.write_text(f"#!/bin/sh\nwhile [ -e '{gate}' ]; do sleep 0.05; done\n")
    slow.chmod(0o755)
    plugin = VoicePlugin()
    done = threading.Event()

    def run() -> None:
        script = Script().quote("ABCD", ask=2.0)
        for n in range(20):  # 20 opens and closes: 40 sentences of 3 s each
            script.open("ABCD", qty=10, tp1=2.2, tp2=2.4, stop=1.9).quote("ABCD", ask=2.0 + n / 1000)
            script.close("ABCD")
        run_script(script, [plugin], config={"voice": {"command": str(slow), "queue_size": 2}})
        done.set()

    worker = threading.Thread(target=run)
    worker.start()
    # The engine finishes at once; shutdown waits at most a bounded time for queued speech.
    worker.join(timeout=20)
    assert done.is_set()
    gate.unlink()  # the speech still queued ends now
    for thread in threading.enumerate():
        if thread.name == "momobot-voice":
            thread.join(timeout=30)
            assert not thread.is_alive()


def test_bad_voice_config_names_key_and_value() -> None:
    with pytest.raises(ConfigError, match=r"\[voice\] rate = 5: must be between 80 and 500"):
        run_script(session(), [VoicePlugin()], config={"voice": {"rate": 5}})
    with pytest.raises(ConfigError, match=r"\[voice\] volume: unknown key"):
        run_script(session(), [VoicePlugin()], config={"voice": {"volume": 11}})


@needs_espeak
def test_alerts_and_a_kill_are_spoken_once_not_per_trade(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script = (
        Script()
        .quote("ABCD", ask=2.00)
        .open("ABCD", qty=100, tp1=2.20, tp2=2.40, stop=1.90)
        .quote("EFGH", ask=5.00)
        .open("EFGH", qty=10, tp1=5.5, tp2=6.0, stop=4.8)
        .kill()
        .open("ABCD", qty=100, tp1=2.20, tp2=2.40, stop=1.90)  # refused: halted
    )
    with caplog.at_level(logging.INFO, logger="momobot.voice"):
        result = run_script(script, [VoicePlugin()], config={"voice": {"output_dir": str(tmp_path)}})
    assert [leg.reason for leg in result.legs] == ["kill", "kill"]
    said = [
        r.getMessage().removeprefix("[Voice] ")
        for r in caplog.records
        if r.getMessage().startswith("[Voice] ") and "engine" not in r.getMessage()
    ]
    assert said == [
        "New trade taken for ABCD at 2.00",
        "New trade taken for EFGH at 5.00",
        "Alert: halted, kill switch",
        "Alert: risk refused for ABCD, kill switch",
    ]
