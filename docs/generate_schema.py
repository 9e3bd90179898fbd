"""Render the generated parts of ``docs/plugins.md`` from the code.

The settings schema (every field of :class:`potpyri_core.settings.InstrumentSettings` and
the models it contains), the step parameters (:data:`potpyri_core.params.CORE_STEPS`), the
core stages (:data:`potpyri_core.corestages.CORE_STAGES`) and the hooks
(:mod:`potpyri_core.hookspecs`) are written between ``<!-- BEGIN GENERATED: name -->`` and
``<!-- END GENERATED: name -->`` markers.

Usage: ``python docs/generate_schema.py`` rewrites the file; ``--check`` exits with 1 when
the file is out of date (the test suite runs the check).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import re
import sys
import textwrap
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from potpyri_core import hookspecs, settings
from potpyri_core.corestages import CORE_STAGES
from potpyri_core.params import CORE_STEPS

GUIDE = Path(__file__).resolve().parent / "plugins.md"


def field_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """Docstrings written under each field of a model's class body (and its bases')."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
        for node, after in itertools.pairwise(body):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def type_name(annotation: object) -> str:
    """A readable type: ``list[str]``, ``int | None``, model names as they are."""
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    text = re.sub(r"\b(?:typing|potpyri_core\.\w+(?:\.\w+)*)\.", "", text)
    return text.replace("NoneType", "None")


def default_text(info: typing.Any) -> str:
    """The default of a field as TOML-ish text (``required`` when there is none)."""
    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    value = info.default_factory() if info.default_factory is not None else info.default
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, dict):
        value = {k: v.model_dump(mode="json") if isinstance(v, BaseModel) else v for k, v in value.items()}
    return f"`{value!r}`" if value is not None else "`None`"


def constraints(info: typing.Any) -> str:
    """Numeric and length bounds of a field (``> 0``, ``≥ 1`` ...)."""
    marks = []
    for meta in info.metadata:
        for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤"), ("min_length", "min length")):
            if getattr(meta, attr, None) is not None:
                marks.append(f"{sign} {getattr(meta, attr)}")
    return f" ({', '.join(marks)})" if marks else ""


def model_table(model: type[BaseModel], title: str) -> str:
    """One model as a markdown section: its docstring, then a table of its fields."""
    docs = field_docstrings(model)
    lines = [f"#### `{title}` ({model.__name__})", "", inspect.cleandoc(model.__doc__ or ""), "",
             "| field | type | default | meaning |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        meaning = docs.get(name, "").replace("|", "\\|")
        kind = type_name(info.annotation).replace("|", "\\|")
        lines.append(f"| `{name}` | `{kind}`{constraints(info)} | {default_text(info).replace('|', chr(92) + '|')}"
                     f" | {meaning} |")
    return "\n".join(lines) + "\n"


def nested_models(model: type[BaseModel], prefix: str, seen: set[type]) -> list[tuple[str, type[BaseModel]]]:
    """``(TOML path, model)`` of a model and every model its fields contain, depth first."""
    out = [(prefix, model)]
    seen.add(model)
    holders: dict[type[BaseModel], list[str]] = {}
    for name, info in model.model_fields.items():
        key = ".<key>" if typing.get_origin(info.annotation) is dict else ""
        for arg in _leaf_types(info.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg not in seen:
                holders.setdefault(arg, []).append(name + key)
    for arg, names in holders.items():
        where = names[0] if len(names) == 1 else "{" + ",".join(names) + "}"
        out += nested_models(arg, f"{prefix}.{where}" if prefix else where, seen)
    return out


def _leaf_types(annotation: object) -> list[object]:
    args = typing.get_args(annotation)
    if not args:
        return [annotation]
    return [leaf for arg in args for leaf in _leaf_types(arg)]


def settings_section() -> str:
    """Every settings model, from :class:`InstrumentSettings` down."""
    parts = [model_table(model, path or "(top level)")
             for path, model in nested_models(settings.InstrumentSettings, "", set())]
    return "\n".join(parts)


def params_section() -> str:
    """Every core step's parameter model."""
    return "\n".join(model_table(model, f"[params.{step}]") for step, model in CORE_STEPS.items())


def stages_section() -> str:
    """The core stage list as a table."""
    lines = ["| stage | unit | hooks | reads | writes | turned off by |", "|---|---|---|---|---|---|"]
    for s in CORE_STAGES:
        hooks = ", ".join(f"`{h}`" for h in s.hooks)
        skips = ", ".join(f"`--{o.replace('_', '-')}`: {'whole stage' if h == '*' else h}" for o, h in s.skips)
        lines.append(f"| `{s.name}` | {s.unit} | {hooks} | `{s.reads}` | `{s.writes}` | {skips or '—'} |")
    return "\n".join(lines) + "\n"


def hooks_section() -> str:
    """Every hook of :mod:`potpyri_core.hookspecs`: kind, signature, contract, callers."""
    callers: dict[str, list[str]] = {}
    for s in CORE_STAGES:
        for h in s.hooks:
            callers.setdefault(h, []).append(s.name)
    parts = []
    for name, func in inspect.getmembers(hookspecs, inspect.isfunction):
        opts = getattr(func, "potpyri_spec", None)
        if opts is None:
            continue
        kind = "do (first result wins)" if opts.get("firstresult") else "provide (all results collected)"
        signature = str(inspect.signature(func)).replace("'", "")
        where = ", ".join(f"`{c}`" for c in callers.get(name, [])) or ("`potpyri simulate`" if "pack" in name
                                                                          else "plugin loading")
        parts.append(f"#### `{name}`\n\n*{kind}; called by {where}*\n\n```python\n{name}{signature}\n```\n\n"
                     f"{inspect.cleandoc(func.__doc__ or '')}\n")
    return "\n".join(parts)


SECTIONS = {"stages": stages_section, "hooks": hooks_section, "settings": settings_section, "params": params_section}


def render(text: str) -> str:
    """``text`` with every generated section replaced by its current content."""
    for name, make in SECTIONS.items():
        begin, end = f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"
        if begin not in text or end not in text:
            raise ValueError(f"{GUIDE.name} lacks the markers of the generated section {name!r}")
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n\n{make()}\n{end}{tail}"
    return text


def main() -> int:
    """Rewrite the guide, or with ``--check`` report whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/plugins.md is out of date")
    args = parser.parse_args()
    current = GUIDE.read_text(encoding="utf-8")
    fresh = render(current)
    if args.check:
        if fresh != current:
            print(f"{GUIDE} is out of date: run python docs/generate_schema.py", file=sys.stderr)
            return 1
        return 0
    GUIDE.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
