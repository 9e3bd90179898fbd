"""What an astronomer gets from a reduced night: the catalogs, the limits, the QA report.

One simulated full-size GMOS-N 2x2 night (as ``tests/test_gmos_end_to_end.py``, seed 7),
reduced once with every stage including ``qa``; the figures come from
:mod:`potpyri_core.simulate.catalogcheck` and :mod:`potpyri_core.simulate.truthcheck`, which
``benchmarks/truth_report.py`` prints.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate import catalogcheck
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from potpyri_core.simulate.truthcheck import TruthCheck
from potpyri_core.stages.sourcecat import APERTURE_INVALID, PSF_INVALID, SourceFlag

pytest.importorskip("potpyri_gemini")


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """Simulate and reduce the night (all stages); return the run and its truth check."""
    root = tmp_path_factory.mktemp("qa_night")
    pm = PluginManager()
    gmos = pm.instrument("GMOS-N")
    simulate_instrument_night(pm, gmos, root, seed=7, binning=2)
    options = RunOptions(proc=2, catalogs=(root / "refcat" / "gaia_dr3.ecsv", root / "refcat" / "ps1.ecsv"))
    summary = Pipeline(gmos, root, options, pm).run()
    assert not summary.failures, summary.table()
    read_noise = float(np.median([a.readnoise for a in gmos.detector.amplifiers]))
    check = TruthCheck(root, summary.stacks[0], {}, read_noise)
    return {"root": root, "summary": summary, "check": check}


# ---------------------------------------------------------------- catalogs


def test_catalog_purity_at_the_stated_threshold(night):
    purity, rows = catalogcheck.purity(night["check"])
    assert rows > 500
    assert purity >= 0.98, f"{purity:.4f} of {rows} rows are real sources"


def test_catalog_completeness_to_m5_minus_0_3(night):
    completeness, stars = catalogcheck.completeness(night["check"])
    assert stars > 300
    assert completeness >= 0.90, f"{completeness:.4f} of {stars} measurable truth stars found"


def test_catalog_rows_meet_the_stated_threshold(night):
    hdu_data, header = night["check"].stack["APPPHOT"]
    table = Table(hdu_data)
    assert header["DETSNR"] == 5.0 and header["DETNCOR"] > 1.5  # resampled: correlated noise
    assert header["NSOURCE"] == len(table) and header["DETCAPPD"] == 0
    saturated = (table["flags"] & SourceFlag.SATURATED) > 0
    assert (table["snr"][~saturated] >= 5.0).all() and (table["det_snr"][~saturated] >= 5.0).all()


@pytest.mark.parametrize("name", ["APPPHOT", "PSFPHOT", "PSFSTARS"])
def test_every_column_has_a_unit(name, night):
    header = night["check"].stack[name][1]
    for k in range(1, header["TFIELDS"] + 1):
        assert f"TUNIT{k}" in header, (name, header[f"TTYPE{k}"])
    units = {header[f"TTYPE{k}"]: header[f"TUNIT{k}"] for k in range(1, header["TFIELDS"] + 1)}
    expected = {"x": "pix", "ra": "deg", "flux": "electron/s", "flux_fit": "electron/s", "mag": "mag", "flags": ""}
    assert units["x"] == "pix"
    assert {c: units[c] for c in expected if c in units} == {c: u for c, u in expected.items() if c in units}


@pytest.mark.parametrize(("name", "invalid"), [("APPPHOT", APERTURE_INVALID), ("PSFPHOT", PSF_INVALID)])
def test_flags_are_named_and_mag_only_where_valid(name, invalid, night):
    data, header = night["check"].stack[name]
    for bit in SourceFlag:
        assert header[f"FLAGB{bit.bit_length() - 1}"].startswith(f"{int(bit)}="), bit
    assert header["FLAGINV"] == int(invalid)
    table = Table(data)
    voided = (table["flags"] & int(invalid)) > 0
    assert np.isnan(table["mag"][voided]).all() and np.isnan(table["mag_err"][voided]).all()
    good = ~voided & np.isfinite(table["mag_inst"])
    zp = night["check"].header["ZPTMAG"]
    np.testing.assert_allclose(table["mag"][good], table["mag_inst"][good] + zp, atol=1e-9)
    assert np.nanmax(table["mag"]) < night["check"].m5_truth() + 1.0


def test_psf_fits_that_moved_have_no_mag(night):
    data, header = night["check"].stack["PSFPHOT"]
    table = Table(data)
    fwhm = night["check"].header["FWHM"]
    moved = np.asarray(table["shift"]) > header["PSFMAXSH"] * fwhm
    assert ((table["flags"][moved] & SourceFlag.PSF_SHIFTED) > 0).all()
    assert np.isnan(table["mag"][moved]).all()
    assert header["NPSFMOVD"] == int(((table["flags"] & SourceFlag.PSF_SHIFTED) > 0).sum())
    # what is left agrees with the aperture photometry of the same source
    ap = Table(night["check"].stack["APPPHOT"][0])
    valid = np.isfinite(table["mag"]) & (table["snr"] > 20)
    diff = np.asarray(table["mag"][valid]) - np.asarray(ap["mag"][table["ap_index"][valid]])
    assert np.nanpercentile(np.abs(diff), 95) < 0.2


def test_epsf_fwhm_from_moffat_fit(night):
    header = night["check"].header
    assert "Moffat" in header.comments["PSFFWHM"]
    assert abs(header["PSFFWHM"] / header["FWHM"] - 1.0) < 0.08, (header["PSFFWHM"], header["FWHM"])


# ---------------------------------------------------------------- limits


def test_injection_limit_matches_truth(night):
    header = night["check"].header
    m5_truth = night["check"].m5_truth()
    assert abs(header["M5INJ"] - m5_truth) <= 0.1, (header["M5INJ"], m5_truth)
    assert abs(header["MC50INJ"] - header["M5SIGMA"]) < 0.4, (header["MC50INJ"], header["M5SIGMA"])
    assert header["NINJECT"] >= 200
    for card in ("LIMDEFA", "LIMDEFI", "LIMDEFC"):
        assert len(header[card]) > 40, card


# ---------------------------------------------------------------- summary


def test_closing_summary_names_products(night):
    text = night["summary"].table()
    assert "nothing failed or set aside" in text
    assert str(night["summary"].stacks[0]) in text
    assert str(night["root"] / "red" / "qa" / "index.html") in text
    assert "mbias_" in text and "mflat_" in text


# ---------------------------------------------------------------- QA report in a browser


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs it); CI must run the browser test")
        pytest.skip("chromium is not installed")
    return found


def _headless(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120,
                          check=False)


IMAGE_CHECK = ("<script>window.addEventListener('load', () => {const r = [...document.images].map("
               "i => i.getAttribute('src') + '=' + i.naturalWidth + 'x' + i.naturalHeight);"
               "document.body.insertAdjacentHTML('beforeend', '<pre id=\"img' + 'check\">' + r.join(' ') + '</pre>');});"
               "</script>")


@pytest.mark.parametrize("page", ["index.html", "target"])
def test_qa_report_renders_with_every_image(page, night, tmp_path):
    chromium = _chromium()
    qa = night["root"] / "red" / "qa"
    path = qa / page if page == "index.html" else next(p for p in qa.glob("*.html") if p.name != "index.html")
    text = path.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained
    images = re.findall(r"<img[^>]* src='([^']+)'", text)
    assert images and all((qa / name).exists() for name in images)
    if page == "target":
        assert len(images) == 3 + 5  # preview, ePSF, zero point, a residual map per frame
        assert text.count("<td>used</td>") == 5
    probe = qa / f"_probe_{path.name}"  # beside the page, so relative links resolve the same
    probe.write_text(text.replace("</body>", IMAGE_CHECK + "</body>"))
    try:
        dom = _headless(chromium, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom",
                        probe.as_uri())
    finally:
        probe.unlink()
    found = re.search(r'<pre id="imgcheck">([^<]*)</pre>', dom.stdout)
    assert found, dom.stderr[-2000:]
    sizes = dict(item.rsplit("=", 1) for item in found.group(1).split())
    assert set(sizes) == set(images)
    assert all(not size.startswith("0x") for size in sizes.values()), sizes
    shot = tmp_path / f"{path.stem}.png"
    done = _headless(chromium, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,1800",
                     path.as_uri())
    assert shot.exists(), done.stderr[-2000:]
    from PIL import Image
    pixels = np.asarray(Image.open(shot).convert("L"), float)
    assert pixels.std() > 20 and (pixels < 128).mean() > 0.02  # not a blank page
    keep = os.environ.get("POTPYRI_QA_SCREENSHOTS")
    if keep:
        shutil.copy(shot, Path(keep) / shot.name)
