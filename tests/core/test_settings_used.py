"""Every validated setting is read by some code: a field nothing consumes is a promise the
pipeline does not keep."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from potpyri_core import params, settings

ROOT = Path(__file__).resolve().parents[2]


def _models(module) -> list[type[BaseModel]]:
    return [v for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, BaseModel) and v.__module__ == module.__name__]


def _sources() -> str:
    files = [p for p in (ROOT / "potpyri_core").rglob("*.py")] + list((ROOT / "plugins").rglob("*.py"))
    return "\n".join(p.read_text(encoding="utf-8") for p in files if p.name != "settings.py"
                     or p.parent.name != "potpyri_core")


def test_every_settings_and_parameter_field_is_read():
    code = _sources() + (ROOT / "potpyri_core" / "settings.py").read_text(encoding="utf-8").split("class StrictModel")[0]
    settings_code = (ROOT / "potpyri_core" / "settings.py").read_text(encoding="utf-8")
    unused = []
    for module in (settings, params):
        for model in _models(module):
            for name in model.model_fields:
                pattern = re.compile(rf"\.{name}\b|[\"']{name}[\"']")
                # methods of the settings models count as readers, their field declarations do not
                methods = re.sub(rf"^\s+{name}:.*$", "", settings_code, flags=re.MULTILINE)
                by_type = model is settings.FrameTyping and name.upper() in settings.FRAME_TYPES  # rules_in_order
                if not (by_type or pattern.search(code) or pattern.search(methods)):
                    unused.append(f"{model.__name__}.{name}")
    assert not unused, f"settings no code reads: {', '.join(unused)}"
