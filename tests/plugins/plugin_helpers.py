"""Shared helpers of the plugin tests; importing this makes the plugin packages importable.

The preferred set-up is ``pip install -e plugins/potpyri-<name>`` for every plugin; without it
(the source tree has no installable core yet) the plugin folders and the repository root are put
on ``sys.path`` so that ``potpyri_core`` and the ``potpyri_<name>`` packages import from source.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ("keck", "gemini", "mmt", "magellan")

if importlib.util.find_spec("potpyri_core") is None:
    sys.path.insert(0, str(ROOT))
for _name in PLUGINS:
    if importlib.util.find_spec(f"potpyri_{_name}") is None:
        sys.path.insert(0, str(ROOT / "plugins" / f"potpyri-{_name}"))

from potpyri_core.settings import InstrumentSettings, settings_from_package

REAL = ROOT / "tests" / "data" / "real"
"""Header extracts of real files (see tests/data/real/PROVENANCE.md)."""

PACKAGES = {"keck": "potpyri_keck", "gemini": "potpyri_gemini", "mmt": "potpyri_mmt", "magellan": "potpyri_magellan"}


def load_settings(package: str) -> dict[str, InstrumentSettings]:
    """Validate every TOML of a plugin package; return the settings by upper-case name."""
    out = {}
    for raw in settings_from_package(package):
        raw = dict(raw)
        raw.pop("_source")
        settings = InstrumentSettings.model_validate(raw)
        out[settings.name.upper()] = settings
    return out
