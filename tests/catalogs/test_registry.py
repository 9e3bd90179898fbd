"""Catalog sources from several plugins: duplicate names and unknown catalog names in settings
are problem lines (``potpyri_core.catalogs.registry`` through ``PluginManager.catalog_sources``)."""

from __future__ import annotations

import copy
import types

import pytest

from potpyri_core import hookimpl
from potpyri_core.catalogs.online import NO_SOURCES_HINT
from potpyri_core.catalogs.registry import check_instrument_catalogs, collect_sources
from potpyri_core.plugins import PluginManager

MINICAM = {
    "name": "MINICAM",
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
    "zeropoint": {"north": {"g": "ps1", "r": "PS2", "i": "ps2"}, "south": {"r": "skymapper"}},
}


class Source:
    def __init__(self, name: str, bands: list[str]) -> None:
        self.name, self.bands = name, bands

    def query(self, center, radius_arcmin, band=None):
        raise AssertionError("not queried in these tests")


def plugin(name: str, sources=None, instruments=None, crash: bool = False) -> types.ModuleType:
    module = types.ModuleType(name)
    if sources is not None or crash:
        def potpyri_catalog_sources():
            if crash:
                raise RuntimeError("no catalogs today")
            return sources
        module.potpyri_catalog_sources = hookimpl(potpyri_catalog_sources)
    if instruments is not None:
        module.potpyri_instruments = hookimpl(lambda: copy.deepcopy(instruments))
    return module


def manager(*plugins: types.ModuleType) -> PluginManager:
    return PluginManager(extra_plugins=list(plugins), use_entry_points=False)


def test_two_sources_with_one_name_are_a_problem_line_and_the_first_is_kept():
    first, second = Source("gaia", ["G"]), Source("Gaia", ["G", "BP"])
    pm = manager(plugin("plugin_a", [first, Source("ps1", ["r"])]), plugin("plugin_b", [second]))
    sources = pm.catalog_sources()
    assert sources["gaia"] is first
    assert pm.problems == [("plugin plugin_b: catalog source 'gaia' is already provided by plugin_a;"
                           " keeping plugin_a's")]
    assert pm.catalog_sources() is sources and len(pm.problems) == 1  # checked once


def test_unknown_catalog_names_in_settings_are_one_line_per_instrument_and_name():
    sources = [Source("gaia", ["G"]), Source("ps1", list("grizy"))]
    pm = manager(plugin("cats", sources), plugin("minicam_plugin", instruments=[MINICAM]))
    assert set(pm.catalog_sources()) == {"gaia", "ps1"}
    assert pm.problems == [
        ("plugin minicam_plugin, instrument MINICAM: catalog 'ps2' (zeropoint.north.r, zeropoint.north.i)"
        " is not provided by any installed source (installed: gaia, ps1)"),
        ("plugin minicam_plugin, instrument MINICAM: catalog 'skymapper' (zeropoint.south.r)"
        " is not provided by any installed source (installed: gaia, ps1)"),
    ]


def test_a_missing_astrometric_source_is_a_problem_line():
    pm = manager(plugin("cats", [Source("ps1", ["r"])]))
    pm.catalog_sources()
    assert len(pm.problems) == 1
    assert pm.problems[0].startswith("astrometry needs the catalog source 'gaia', which no installed plugin provides")
    assert "pip install potpyri-catalogs" in pm.problems[0]


def test_no_sources_at_all_is_one_line_saying_what_to_install():
    pm = manager(plugin("minicam_plugin", instruments=[MINICAM]))
    assert pm.catalog_sources() == {}
    assert pm.problems == [NO_SOURCES_HINT]
    assert "pip install potpyri-catalogs" in NO_SOURCES_HINT and "--catalog FILE" in NO_SOURCES_HINT


def test_crashing_hooks_and_objects_that_are_not_sources_are_problem_lines():
    sources, problems = collect_sources([
        ("crashing", plugin("crashing", crash=True).potpyri_catalog_sources),
        ("odd", lambda: [object(), Source("ps1", ["r"])]),
    ])
    assert list(sources) == ["ps1"]
    assert problems == ["plugin crashing: potpyri_catalog_sources failed: RuntimeError: no catalogs today",
                        "plugin odd: catalog source object has no name, bands, query; ignored"]


def test_every_shipped_instrument_names_only_the_sources_of_potpyri_catalogs():
    pytest.importorskip("potpyri_catalogs")
    from potpyri_catalogs.sources import SOURCES

    instruments = PluginManager().instruments()
    assert len(instruments) >= 9
    assert check_instrument_catalogs(instruments, {s.name: s for s in SOURCES}) == []
