"""An instrument plugin overrides a step for its own instrument only; the core default
serves every other instrument."""

from __future__ import annotations

import types
from pathlib import Path

from astropy.io import fits

from potpyri_core import hookimpl
from potpyri_core.frames import Classification
from potpyri_core.plugins import PluginManager


def _override_module() -> types.ModuleType:
    module = types.ModuleType("gmos_s_only_classifier")

    @hookimpl
    def potpyri_classify(instrument, header, path):
        if instrument.name != "GMOS-S":
            return None
        return Classification(path.name, "override", "r", "12", "2x2", 1.0, "SCIENCE", 0.0, "")

    @hookimpl
    def potpyri_zeropoint(instrument, band, sources, reference, options):
        return {"ZPTMAG": 30.0, "ZPTMUCER": 0.0, "ZPTNSTAR": 0} if instrument.name == "GMOS-S" else None

    module.potpyri_classify = potpyri_classify
    module.potpyri_zeropoint = potpyri_zeropoint
    return module


def test_override_applies_to_its_instrument_and_default_to_the_others():
    import potpyri_gemini

    pm = PluginManager(extra_plugins=[potpyri_gemini, _override_module()], use_entry_points=False)
    header = fits.Header({"INSTRUME": "GMOS-N", "OBJECT": "M1", "OBSTYPE": "BIAS", "EXPTIME": 0.0, "CCDSUM": "2 2"})
    south = pm.hook.potpyri_classify(instrument=pm.instrument("GMOS-S"), header=header, path=Path("a.fits"))
    north = pm.hook.potpyri_classify(instrument=pm.instrument("GMOS-N"), header=header, path=Path("a.fits"))
    assert south.target == "override"
    assert (north.type, north.target) == ("BIAS", "M1")
    zp = pm.hook.potpyri_zeropoint(instrument=pm.instrument("GMOS-S"), band="r", sources=None, reference=None,
                                   options=None)
    assert zp["ZPTMAG"] == 30.0


def test_every_do_hook_has_a_core_default():
    pm = PluginManager(use_entry_points=False)
    for name in ("potpyri_read_header", "potpyri_classify", "potpyri_assemble", "potpyri_build_calibration",
                 "potpyri_apply_calibrations", "potpyri_mask", "potpyri_subtract_sky", "potpyri_solve_wcs",
                 "potpyri_stack", "potpyri_photometry", "potpyri_zeropoint", "potpyri_pack_raw"):
        impls = getattr(pm.hook, name).get_hookimpls()
        assert any(impl.plugin_name == "potpyri-core" and impl.trylast for impl in impls), name
