"""The journal's errors, shared by the journal and its lock."""

from __future__ import annotations


class JournalError(Exception):
    """The journal file cannot be opened, is in use by another writer, or is not a MomoBot journal."""


class JournalWriteError(JournalError):
    """One write failed (the file is locked by another program, the disk is full, ...)."""
