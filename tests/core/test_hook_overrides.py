"""Dispatch by the core: a plugin's hooks run for its own instruments only, without testing
which instrument it is called for; misspelt hook names are reported at load."""

from __future__ import annotations

from pathlib import Path

from astropy.io import fits

from potpyri_core import hookimpl
from potpyri_core.frames import Classification
from potpyri_core.plugins import HOOK_NAMES, PluginManager
from potpyri_core.settings import settings_from_package


def _instrument_plugin(name: str, target: str):
    """An instrument plugin providing a renamed copy of GMOS-N that overrides classification."""
    raw = next(r for r in settings_from_package("potpyri_gemini") if r["name"] == "GMOS-N")

    class Plugin:
        @hookimpl
        def potpyri_instruments(self):
            return [{**raw, "name": name, "aliases": [], "_source": f"{name}.toml"}]

        @hookimpl
        def potpyri_classify(self, instrument, header, path):
            return Classification(path.name, target, "r", "12", "2x2", 1.0, "SCIENCE", 0.0, "")

    return Plugin()


def test_each_instrument_gets_only_its_own_plugins_overrides():
    pm = PluginManager(extra_plugins=[_instrument_plugin("CAM-A", "from A"), _instrument_plugin("CAM-B", "from B")],
                       use_entry_points=False)
    header = fits.Header({"INSTRUME": "GMOS-N", "OBJECT": "M1", "OBSTYPE": "BIAS", "EXPTIME": 0.0})
    for name, expected in (("CAM-A", "from A"), ("CAM-B", "from B")):
        hooks = pm.for_instrument(name)
        result = hooks.potpyri_classify(instrument=pm.instrument(name), header=header, path=Path("a.fits"))
        assert result.target == expected


def test_instrument_without_override_gets_the_core_default():
    import potpyri_gemini

    pm = PluginManager(extra_plugins=[potpyri_gemini, _instrument_plugin("CAM-A", "from A")], use_entry_points=False)
    header = fits.Header({"INSTRUME": "GMOS-N", "OBJECT": "M1", "OBSTYPE": "BIAS", "EXPTIME": 0.0, "CCDSUM": "2 2"})
    north = pm.for_instrument("GMOS-N").potpyri_classify(instrument=pm.instrument("GMOS-N"), header=header,
                                                        path=Path("a.fits"))
    assert (north.type, north.target) == ("BIAS", "M1")


def test_a_plugin_without_instruments_applies_to_every_instrument():
    class Everywhere:
        @hookimpl
        def potpyri_zeropoint(self, instrument, band, sources, reference, params):
            return {"ZPTMAG": 30.0, "ZPTMUCER": 0.0, "ZPTNSTAR": 0}

    import potpyri_gemini

    pm = PluginManager(extra_plugins=[potpyri_gemini, Everywhere()], use_entry_points=False)
    for name in ("GMOS-N", "F2"):
        zp = pm.for_instrument(name).potpyri_zeropoint(instrument=pm.instrument(name), band="r", sources=None,
                                                       reference=None, params=None, apcor_mag_err=0.0)
        assert zp["ZPTMAG"] == 30.0


def test_misspelt_hook_name_is_a_problem_line_with_a_suggestion():
    class Misspelt:
        @hookimpl
        def potpyri_subtract_skies(self, instrument, frames, params):
            return frames

    pm = PluginManager(extra_plugins=[Misspelt()], use_entry_points=False)
    pm.instruments()
    assert any("potpyri_subtract_skies is not a potpyri hook (did you mean potpyri_subtract_sky?)" in p
               for p in pm.problems), pm.problems


def test_hook_with_arguments_the_spec_does_not_have_is_a_problem_line():
    class WrongArgs:
        @hookimpl
        def potpyri_mask_satellites(self, instrument, frame, options):
            return None

    pm = PluginManager(extra_plugins=[WrongArgs()], use_entry_points=False)
    pm.instruments()
    assert any("WrongArgs" in p and "options" in p for p in pm.problems), pm.problems


def test_every_do_hook_has_a_core_default():
    pm = PluginManager(use_entry_points=False)
    provide = {"potpyri_instruments", "potpyri_catalog_sources", "potpyri_stages"}
    for name in sorted(HOOK_NAMES - provide):
        impls = getattr(pm.hook, name).get_hookimpls()
        assert any(impl.plugin_name == "potpyri-core" and impl.trylast for impl in impls), name
