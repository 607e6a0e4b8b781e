"""apprise, imported once without its import-time DeprecationWarning (it imports ``imghdr``,
deprecated since Python 3.11): the warning is the library's, not something a trader can act on."""

from __future__ import annotations

import contextlib
import warnings
from types import ModuleType


def load() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with contextlib.suppress(ImportError):  # gone in Python 3.13; apprise does without it
            import imghdr  # noqa: F401
        import apprise
    return apprise
