"""Network helpers shared by the API and the plugins: loopback addresses, and giving way to a
peer on this machine after a write."""

from __future__ import annotations

import ctypes
import ipaddress
from collections.abc import Callable

__all__ = ["is_loopback", "yield_cpu"]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses: 127.0.0.0/8, ::1, and 127.0.0.0/8 written
    as IPv6 (``::ffff:127.0.0.1``), in brackets or not. A name is not resolved (``localhost.``,
    fully qualified, is asked of DNS, which may answer anything: not this machine)."""
    if host.lower() == "localhost":
        return True
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def yield_cpu() -> None:
    """Give up the CPU once (``sched_yield``), keeping the GIL; nothing where there is none.

    For a thread that has just written to a peer on this machine (a hotkey server): the kernel
    often wakes the peer on the writer's CPU, where it would wait for whatever the writer does
    next. Returns at once (0.3 us) when nothing else is ready to run on this CPU; when a task
    is, it runs first, for up to a scheduler slice. The GIL stays held, so the other threads of
    this process do not get in first (Python 3.12's ``os.sched_yield`` lets it go)
    (docs/PERFORMANCE.md, "Giving up the CPU after the write")."""
    _yield()


def _libc_sched_yield() -> Callable[[], object]:
    try:
        call = ctypes.PyDLL(None).sched_yield  # PyDLL: called with the GIL held
    except (AttributeError, OSError):
        return lambda: None
    call.restype = ctypes.c_int
    call.argtypes = []
    return call


_yield = _libc_sched_yield()
