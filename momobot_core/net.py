"""Network helpers shared by the API and the plugins: loopback addresses, and giving way to a
peer on this machine after a write."""

from __future__ import annotations

import ipaddress
import os
import time


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def yield_cpu() -> None:
    """Give up the CPU once (``sched_yield``; ``time.sleep(0)`` where there is none).

    After a write to a peer on this machine (a hotkey server, the broker platform): the kernel
    often wakes the peer on the writer's CPU, where it would wait for whatever the writer does
    next. Returns at once when nothing else is ready to run (docs/PERFORMANCE.md, "Giving up
    the CPU after the write")."""
    _yield()


_yield = getattr(os, "sched_yield", None) or (lambda: time.sleep(0))
