"""PluginManager in-process: validation problems, lookup by name/alias, unknown-instrument hints."""

from __future__ import annotations

import copy
import types

import potpyri_gemini
import potpyri_keck
import potpyri_mmt
import pytest

from potpyri_core import hookimpl
from potpyri_core.plugins import PluginManager, UnknownInstrumentError, plugin_index
from potpyri_core.settings import InstrumentSettings, settings_from_package

GOOD = {
    "name": "MINICAM",
    "aliases": ["mini"],
    "observatory": "Test Observatory",
    "telescope": "Test Telescope",
    "instrument_values": ["=MiniCam"],
    "band": "optical",
    "pixel_scale": 0.3,
    "out_size": 512,
    "keywords": {"target": ["OBJECT"], "exptime": ["EXPTIME"], "filter": ["FILTER"]},
    "frame_types": {"science": [{"when": {"IMAGETYP": "=object"}}]},
    "detector": {"saturation_adu": 60000.0, "amplifiers": [{"name": "A", "hdu": 0, "gain": 2.0, "readnoise": 4.0}]},
    "calibrations": {"needed": ["bias"]},
    "zeropoint": {"north": {"r": "ps1"}},
    "_source": "test/minicam.toml",
}


def plugin_module(name: str, hook) -> types.ModuleType:
    """A module named ``name`` whose ``potpyri_instruments`` hook is ``hook``."""
    module = types.ModuleType(name)
    module.potpyri_instruments = hookimpl(hook)
    return module


def malformed() -> dict:
    raw = copy.deepcopy(GOOD)
    raw["name"] = "BADCAM"
    raw["_source"] = "test/badcam.toml"
    raw["pixel_scale"] = -1
    raw["detector"]["amplifiers"][0]["gain"] = "high"
    raw["frame_types"] = {"bias": [{"when": {"IMAGETYP": "=bias"}}]}  # no science rule
    raw["colour"] = "blue"  # unknown field (misspelt setting)
    return raw


def raising():
    raise RuntimeError("cannot read my TOML files")


@pytest.fixture()
def pm() -> PluginManager:
    return PluginManager(
        extra_plugins=[
            plugin_module("good_plugin", lambda: [copy.deepcopy(GOOD)]),
            plugin_module("malformed_plugin", lambda: [malformed()]),
            plugin_module("raising_plugin", raising),
        ],
        use_entry_points=False,
    )


def test_good_instrument_is_loaded_with_its_plugin(pm):
    entries = pm.instruments()
    assert sorted(entries) == ["MINICAM"]
    assert entries["MINICAM"].plugin == "good_plugin"
    assert entries["MINICAM"].version == "dev"
    assert pm.instrument("mini").pixel_scale == 0.3


def test_problems_are_one_line_each_with_plugin_instrument_and_field(pm):
    pm.instruments()
    assert all("\n" not in p for p in pm.problems)
    bad = [p for p in pm.problems if "malformed_plugin" in p]
    assert len(bad) == 4, bad
    assert all(p.startswith("plugin malformed_plugin, instrument BADCAM (test/badcam.toml): setting '") for p in bad)
    fields = sorted(p.split("setting '")[1].split("'")[0] for p in bad)
    assert fields == ["colour", "detector.amplifiers.0.gain", "frame_types", "pixel_scale"]
    assert any("'pixel_scale': Input should be greater than 0 (got -1)" in p for p in bad)
    assert any("at least one science rule is required" in p for p in bad)
    raised = [p for p in pm.problems if "raising_plugin" in p]
    assert raised == ["plugin raising_plugin: potpyri_instruments failed: RuntimeError: cannot read my TOML files"]
    assert len(pm.problems) == 5


def test_problems_are_not_repeated_when_asked_twice(pm):
    pm.instruments()
    pm.instruments()
    pm.instrument("MINICAM")
    assert len(pm.problems) == 5


def test_nothing_is_imported_or_validated_before_first_use():
    calls = []
    module = plugin_module("lazy_plugin", lambda: calls.append(1) or [copy.deepcopy(GOOD)])
    pm = PluginManager(extra_plugins=[module], use_entry_points=False)
    assert calls == [] and pm._pm is None
    pm.instrument("minicam")
    pm.instrument("MINI")
    assert calls == [1]


@pytest.fixture()
def real_pm() -> PluginManager:
    return PluginManager(extra_plugins=[potpyri_gemini, potpyri_keck, potpyri_mmt], use_entry_points=False)


@pytest.mark.parametrize(
    ("asked", "name"),
    [("gmos-s", "GMOS-S"), ("GMOS-N", "GMOS-N"), ("gmos_n", "GMOS-N"), ("  Gmos-North ", "GMOS-N"),
     ("bino", "BINOSPEC"), ("BINO", "BINOSPEC"), ("lris", "LRIS"), ("LRIS-b", "LRIS"), ("f2", "F2")],
)
def test_instrument_is_case_insensitive_with_aliases(real_pm, asked, name):
    assert real_pm.instrument(asked).name == name


def test_unknown_instrument_lists_installed_and_names_the_plugin_to_install():
    pm = PluginManager(extra_plugins=[potpyri_gemini], use_entry_points=False)
    with pytest.raises(UnknownInstrumentError) as info:
        pm.instrument("MOSFIRE")
    message = str(info.value)
    assert message.startswith("unknown instrument 'MOSFIRE'; installed: F2, GMOS-N, GMOS-S.")
    assert "MOSFIRE is provided by the potpyri-keck plugin: pip install potpyri-keck" in message


def test_unknown_instrument_in_no_plugin_lists_every_published_plugin():
    pm = PluginManager(extra_plugins=[potpyri_gemini], use_entry_points=False)
    with pytest.raises(UnknownInstrumentError) as info:
        pm.instrument("NOPE")
    message = str(info.value)
    assert "installed: F2, GMOS-N, GMOS-S." in message
    for dist in plugin_index():
        assert dist in message
    assert "potpyri-mmt (BINOSPEC, MMIRS)" in message


def test_unknown_instrument_with_nothing_installed_says_none():
    pm = PluginManager(use_entry_points=False)
    with pytest.raises(UnknownInstrumentError, match=r"installed: none\. lris is provided by the potpyri-keck"):
        pm.instrument("lris")


def test_unknown_alias_names_the_plugin_to_install():
    pm = PluginManager(extra_plugins=[potpyri_gemini], use_entry_points=False)
    with pytest.raises(UnknownInstrumentError, match="pip install potpyri-mmt"):
        pm.instrument("bino")


def test_two_plugins_with_the_same_instrument_is_a_problem():
    other = copy.deepcopy(GOOD)
    other["pixel_scale"] = 9.9
    pm = PluginManager(
        extra_plugins=[plugin_module("first_plugin", lambda: [copy.deepcopy(GOOD)]),
                       plugin_module("second_plugin", lambda: [other])],
        use_entry_points=False,
    )
    pm.instruments()
    assert any("MINICAM" in p and "first_plugin" in p and "second_plugin" in p for p in pm.problems), pm.problems


def test_unknown_instrument_message_carries_the_plugin_problems(pm):
    with pytest.raises(UnknownInstrumentError) as info:
        pm.instrument("GMOS-N")
    message = str(info.value)
    assert "installed: MINICAM." in message and "pip install potpyri-gemini" in message
    assert "Plugin problems: " in message and "raising_plugin" in message


@pytest.mark.parametrize(("package", "names"), [("potpyri_gemini", ["F2", "GMOS-N", "GMOS-S"])])
def test_settings_from_package_output_validates(package, names):
    raws = settings_from_package(package)
    assert [r["_source"] for r in raws] == [f"{package}/instruments/{f}" for f in ("f2.toml", "gmos-n.toml", "gmos-s.toml")]
    validated = []
    for raw in raws:
        raw = dict(raw)
        raw.pop("_source")
        validated.append(InstrumentSettings.model_validate(raw).name)
    assert validated == names


def test_settings_from_package_without_source_key_is_rejected_by_the_schema():
    raw = settings_from_package("potpyri_gemini")[0]
    with pytest.raises(ValueError, match="_source"):
        InstrumentSettings.model_validate(raw)
