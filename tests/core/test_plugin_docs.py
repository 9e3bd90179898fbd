"""The plugin guide's generated parts are up to date, and the external plugin uses only the
documented public module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_parts_of_the_plugin_guide_are_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "generate_schema.py"), "--check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_external_plugins_import_only_the_public_api():
    imports = []
    for path in sorted((ROOT / "tests" / "external_plugin").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imports.append((path.name, node.module))
            elif isinstance(node, ast.Import):
                imports += [(path.name, alias.name) for alias in node.names]
    core = [(name, module) for name, module in imports if module.split(".")[0] == "potpyri_core"]
    assert core, "the external plugins import nothing from potpyri_core?"
    assert all(module == "potpyri_core.api" for _, module in core), core
