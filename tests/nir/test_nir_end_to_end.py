"""The NIR instruments end to end on simulated nights (cut-down arrays, real raw layouts):
3 darks + 9 dithered science frames, no flat frames (sky flats from the science), the sky
from the dithers; the stack is compared with the simulator's truth."""

from __future__ import annotations

import pytest

from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.nightcheck import reduce_small_night

_UNFINISHED = pytest.mark.xfail(strict=False, reason="simulates and classifies; the reduction of this night"
                                " does not yet produce a stack (F2 measured: no stack; MMIRS, FourStar not run)")
NIGHTS = [pytest.param(("MOSFIRE", "K", 30.0), id="MOSFIRE"),
          pytest.param(("F2", "K", 15.0), id="F2", marks=_UNFINISHED),
          pytest.param(("MMIRS", "J", 60.0), id="MMIRS", marks=_UNFINISHED),
          pytest.param(("FourStar", "J", 30.0), id="FourStar", marks=_UNFINISHED)]


@pytest.fixture(scope="module", params=NIGHTS)
def night(request, tmp_path_factory):
    name, band, exptime = request.param
    pytest.importorskip({"MOSFIRE": "potpyri_keck", "F2": "potpyri_gemini", "MMIRS": "potpyri_mmt",
                         "FourStar": "potpyri_magellan"}[name])
    figures, check = reduce_small_night(PluginManager(), name, tmp_path_factory.mktemp(name), band, exptime)
    return figures, check


def test_reduces_without_failures_with_a_sky_flat(night):
    figures, check = night
    assert figures.failures == 0
    flat = next((check.root / "red" / "cals").glob("mflat_*.fits"))
    from astropy.io import fits
    assert fits.getheader(flat)["FLATSRC"] == "sky" and fits.getheader(flat)["SKYFLAT"]


def test_astrometric_rms_against_truth(night):
    figures, _ = night
    assert figures.astrometric_rms <= 0.05, figures


def test_residual_sky_in_empty_regions(night):
    figures, _ = night
    assert abs(figures.empty_sky_residual) < 0.2, figures


@pytest.mark.xfail(strict=False, reason="measured on MOSFIRE: dZP -0.04..+0.17 from 10-19 2MASS stars on a"
                   " 3' field; not yet within 0.03")
def test_zero_point_against_truth(night):
    figures, _ = night
    assert abs(figures.zero_point_error) <= 0.03, figures
    assert abs(figures.zero_point_error) < 3 * figures.zero_point_uncertainty, figures


@pytest.mark.xfail(strict=False, reason="measured on MOSFIRE: noise/ERROR 1.2-1.5 and M5 1-2 mag shallow:"
                   " ~100 e- of residual structure on 64-px scales after the dithered sky")
def test_noise_and_depth_against_truth(night):
    figures, _ = night
    assert 0.9 <= figures.noise_ratio <= 1.1, figures
    assert abs(figures.m5_error) <= 0.2, figures
