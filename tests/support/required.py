"""What the science tests need, found relative to the repository; missing means *fail* in CI.

A plugin or data file that a science test needs and cannot find skips the test on a
developer's machine, but fails it when the ``CI`` environment variable is set, so that a
CI run never passes by silently skipping the science validation.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
"""Real raw files shared between the project's checkouts: ``<repo>/../shared/data``."""


def in_ci() -> bool:
    """True when the tests run in continuous integration (``CI`` set and not ``0``/``false``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(reason: str) -> None:
    """Fail in CI, skip elsewhere (also at module level: a whole test module)."""
    if in_ci():
        pytest.fail(f"{reason} (required in CI)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_module(name: str) -> ModuleType:
    """Import ``name`` (a plugin the test needs) or skip / fail in CI."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"{name} is not installed: {exc}")
        raise  # unreachable: missing() raises


def require_path(path: Path) -> Path:
    """Return ``path`` if it exists, else skip / fail in CI."""
    if not path.exists():
        missing(f"{path} not found (shared data is looked for at <repo>/../shared/data)")
    return path
