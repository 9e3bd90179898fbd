"""Colour terms of the zero point: published transformations, fixed and fitted terms, settings."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from pydantic import ValidationError

from potpyri_core.catalogs.transforms import TRANSFORMATIONS, transformation
from potpyri_core.params import PhotometryParams
from potpyri_core.settings import ZeroPointCatalogs, ZeroPointSource
from potpyri_core.simulate.refcat import band_minus_r
from potpyri_core.stages import colourterms, photometry

# Tonry et al. 2012 (ApJ 750, 99) Table 6 also gives quadratic fits, c0 + c1 x + c2 x^2 in
# x = (g - r)_P1; the linear relations the pipeline uses must follow them within 0.01 mag over
# the colours of most stars (a mistyped coefficient does not).
TONRY_QUADRATIC = {"B": (0.212, 0.556, 0.034), "V": (0.005, 0.462, 0.013), "R": (-0.137, -0.108, -0.029),
                   "I": (-0.366, -0.136, -0.018)}


@pytest.mark.parametrize("band", "BVRI")
def test_tonry_linear_relations_follow_the_published_quadratic_ones(band):
    rel = TRANSFORMATIONS["tonry2012"][band]
    x = np.linspace(0.2, 1.0, 9)
    c0, c1, c2 = TONRY_QUADRATIC[band]
    assert np.max(np.abs(rel.offset + rel.coefficient * x - (c0 + c1 * x + c2 * x**2))) < 0.01
    assert rel.band == {"B": "g", "V": "r", "R": "r", "I": "i"}[band] and rel.colour == "g-r"


def test_lupton_v_agrees_with_the_independent_jester_relations():
    """Lupton's V from SDSS g, r gives V - r; Jester et al. 2005 (all stars with Rc-Ic < 1.15, on
    the same SDSS page) publish r = V - 0.42 (B - V) + 0.11 and g - r = 1.02 (B - V) - 0.22."""
    v = TRANSFORMATIONS["lupton2005"]["V"]
    gr = np.linspace(0.3, 1.1, 9)
    v_minus_r = gr + v.offset + v.coefficient * gr
    jester = 0.42 * (gr + 0.22) / 1.02 - 0.11
    assert np.max(np.abs(v_minus_r - jester)) < 0.03


def test_reference_in_the_filter_system_is_the_published_arithmetic():
    """V (AB) of a star with PS1 g = 17.0, r = 16.5: 16.5 + 0.006 + 0.474 * 0.5 + 0.02 (B&R 2007)."""
    reference = Table({"ra": [150.0], "dec": [2.2], "mag_g": [17.0], "err_g": [0.01], "mag_r": [16.5],
                       "err_r": [0.01]})
    term = colourterms.published_term("V", ZeroPointSource(catalog="ps1", transform="tonry2012"), "ps1")
    out = colourterms.in_filter_system(reference, "V", term)
    assert out["mag_V"][0] == pytest.approx(16.763, abs=1e-9)
    # its error: catalog r, the colour's error times the term, the relation's 0.012 rms
    assert out["err_V"][0] == pytest.approx(np.sqrt(0.01**2 + (0.474 * np.sqrt(2) * 0.01) ** 2 + 0.012**2))
    assert term.cards()["ZPTCOLOR"][0] == "g-r" and term.cards()["ZPTCTERM"][0] == 0.474
    assert "Tonry" in term.cards()["ZPTCSRC"][0]
    with pytest.raises(ValueError, match="no g"):
        colourterms.in_filter_system(reference[["ra", "dec", "mag_r"]], "V", term)


def test_simulated_johnson_colours_are_the_transformation():
    """The simulator's stars have the B, V, R, I (AB) the published relation gives from g, r, i."""
    c = np.linspace(-2, 2, 5)
    gr = band_minus_r("g", c) - band_minus_r("r", c)
    v = transformation("tonry2012", "V")
    assert np.allclose(band_minus_r("V", c), v.offset + 0.02 + v.coefficient * gr)
    i = transformation("tonry2012", "I")
    assert np.allclose(band_minus_r("I", c), band_minus_r("i", c) + i.offset + 0.45 + i.coefficient * gr)
    # AB, not Vega: R - r within 0.1 mag at the median colour (Vega R - r is -0.21 there)
    assert abs(band_minus_r("R", 0.0)) < 0.1


def _field(n: int, slope: float, zp: float, colour_sigma: float, seed: int = 5) -> tuple[Table, Table]:
    """Instrumental and catalog magnitudes of ``n`` stars whose filter is ``r + slope (g - r)``."""
    rng = np.random.default_rng(seed)
    ra, dec = 150.0 + rng.uniform(-0.04, 0.04, n), 2.2 + rng.uniform(-0.04, 0.04, n)
    r = rng.uniform(16.0, 21.0, n)
    gr = 0.6 + colour_sigma * rng.standard_normal(n)
    err = 0.003 * 10 ** (0.2 * (r - 16.0))
    inst = r + slope * gr - zp + rng.normal(0.0, err)
    sources = Table({"ra": ra, "dec": dec, "mag_inst": inst, "mag_err": err, "snr": 1.0857 / err,
                     "flags": np.zeros(n, int), "elongation": np.ones(n)})
    reference = Table({"ra": ra, "dec": dec, "mag_g": r + gr, "err_g": np.full(n, 0.01), "mag_r": r,
                       "err_r": np.full(n, 0.01)}, meta={"catalog": "ps1"})
    return sources, reference


def test_fitted_term_recovers_the_slope_and_the_zero_point():
    sources, reference = _field(300, -0.12, 27.4, 0.35)
    source = ZeroPointSource(catalog="ps1", colour="g-r", fit=True)
    params = PhotometryParams()
    term = colourterms.colour_term(sources, reference, "r", source, params)
    assert term.coefficient == pytest.approx(-0.12, abs=0.01)
    assert term.nstars > 250 and term.source.startswith("fit")
    zp = photometry.zero_point(sources, colourterms.in_filter_system(reference, "r", term), "r")
    assert zp["ZPTMAG"] == pytest.approx(27.4, abs=0.005)
    # without the term the zero point is off by slope * mean colour (0.07 mag)
    plain = photometry.zero_point(sources, reference, "r")
    assert abs(plain["ZPTMAG"] - 27.4) > 0.05


def test_fit_refused_with_too_few_stars_or_too_narrow_colours_keeps_the_fixed_term():
    params = PhotometryParams()
    source = ZeroPointSource(catalog="ps1", colour="g-r", fit=True, term=-0.1, term_source="a paper",
                             fit_min_stars=50)
    few = _field(30, -0.12, 27.4, 0.35)
    term = colourterms.colour_term(*few, "r", source, params)
    assert term.coefficient == -0.1 and term.source.startswith("fit refused: 30 stars")
    narrow = _field(300, -0.12, 27.4, 0.02)
    term = colourterms.colour_term(*narrow, "r", source, params)
    assert term.coefficient == -0.1 and "span 0.0" in term.source


def test_settings_accept_names_and_tables_and_reject_inconsistent_terms():
    zp = ZeroPointCatalogs(north={"r": "ps1", "V": {"catalog": "ps1", "transform": "tonry2012"}},
                           south={"r": "skymapper"})
    assert zp.catalog_for("r", -45.0) == "skymapper" and zp.catalog_for("V", -45.0) == "ps1"
    assert zp.source_for("V", 10.0).catalog_bands("V") == ("r", "g")
    assert zp.source_for("r", 10.0).catalog_bands("r") == ("r",)
    with pytest.raises(ValidationError, match="zeropoint.north.u: transformation 'tonry2012' has no filter 'u'"):
        ZeroPointCatalogs(north={"u": {"catalog": "ps1", "transform": "tonry2012"}})
    with pytest.raises(ValidationError, match="unknown transform"):
        ZeroPointSource(catalog="ps1", transform="tonry2013")
    with pytest.raises(ValidationError, match="leave band, colour and term unset"):
        ZeroPointSource(catalog="ps1", transform="tonry2012", colour="g-r")
    with pytest.raises(ValidationError, match="term_source"):
        ZeroPointSource(catalog="ps1", colour="g-r", term=0.05)
    with pytest.raises(ValidationError, match="needs colour"):
        ZeroPointSource(catalog="ps1", fit=True)
    with pytest.raises(ValidationError, match="joined by '-'"):
        ZeroPointSource(catalog="ps1", colour="gr", fit=True)
