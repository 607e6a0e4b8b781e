"""Network helpers: which hosts are this machine (loopback)."""

from __future__ import annotations

import pytest

from momobot_core.net import is_loopback


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.2", "localhost", "LOCALHOST", "::1", "[::1]", "::ffff:127.0.0.1"],
)
def test_localhost_and_loopback_addresses_are_this_machine(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host",
    ["trader-pc", "hotkeys.example", "", "0.0.0.0", "::", "::ffff:0.0.0.0", "localhost.", "[::1", "[]"],
)
def test_names_and_unspecified_addresses_are_not_this_machine(host: str) -> None:
    # A name is not resolved: one that points at this machine is not recognised (documented).
    assert not is_loopback(host)
