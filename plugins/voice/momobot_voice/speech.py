"""The speaker: a worker thread that runs the system's speech engine, one phrase at a time.

``say`` only puts the phrase on a bounded queue, so the trading path never waits
for speech. A speech engine that is missing or fails is reported once and
otherwise ignored.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

log = logging.getLogger("momobot.voice")

#: Speech engines tried in order when none is configured, with their "write to a file" option.
ENGINES = {"espeak-ng": "-w", "espeak": "-w", "say": "-o"}

_STOP = object()


def find_engine(command: str | None) -> str | None:
    """The configured command if it exists, else the first known engine found, else None."""
    if command:
        return shutil.which(command)
    for name in ENGINES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Speaker:
    """Speaks phrases in order on a background thread; never blocks the caller."""

    def __init__(
        self,
        executable: str,
        *,
        output_dir: Path | None = None,
        rate: int | None = None,
        voice: str | None = None,
        queue_size: int = 32,
    ) -> None:
        self.executable = executable
        self.output_dir = output_dir
        self.rate = rate
        self.voice = voice
        self.files: list[Path] = []
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._failed_once = False
        self._full_once = False
        self._deadline: float | None = None  # set by close(): nothing queued is said after it
        self._thread = threading.Thread(target=self._run, name="momobot-voice", daemon=True)
        self._thread.start()

    def say(self, text: str) -> None:
        try:
            self._queue.put_nowait(text)
        except queue.Full:
            if not self._full_once:
                self._full_once = True
                log.warning(
                    "[Voice] speech is falling behind: phrases are skipped until it"
                    " catches up (first skipped: %r)",
                    text,
                )

    def close(self, timeout: float) -> None:
        """Say what is queued, for at most ``timeout`` seconds in all, then stop: what is still
        queued then is not said (the phrase being spoken ends first)."""
        deadline = time.monotonic() + timeout
        self._deadline = deadline
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(max(deadline - time.monotonic(), 0))

    def _argv(self, text: str) -> list[str]:
        argv = [self.executable]
        name = Path(self.executable).name
        if self.rate and name != "say":
            argv += ["-s", str(self.rate)]
        elif self.rate:
            argv += ["-r", str(self.rate)]
        if self.voice:
            argv += ["-v", self.voice]
        if self.output_dir is not None:
            path = self.output_dir / f"{len(self.files) + 1:04d}.wav"
            self.files.append(path)
            argv += [ENGINES.get(name, "-w"), str(path)]
        return [*argv, text]

    def _run(self) -> None:
        while True:
            text = self._queue.get()
            if text is _STOP or (self._deadline is not None and time.monotonic() > self._deadline):
                return
            assert isinstance(text, str)
            try:
                subprocess.run(
                    self._argv(text),
                    check=True,
                    timeout=30,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                if not self._failed_once:
                    self._failed_once = True
                    detail = (
                        exc.stderr.decode(errors="replace").strip()
                        if isinstance(exc, subprocess.CalledProcessError) and exc.stderr
                        else str(exc)
                    )
                    log.warning(
                        "[Voice] the speech engine failed (%s); trading goes on, and"
                        " further failures are not reported",
                        detail,
                    )
                continue
            log.info("[Voice] %s", text)
