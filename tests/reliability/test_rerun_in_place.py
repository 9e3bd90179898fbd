"""Stages that rewrite a workspace frame in place redo their work from the previous stage's
product: a re-run with a changed sky parameter equals a fresh run with it (no sky subtracted
twice), and a frame whose kept input is gone is refused, not reduced twice."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from potpyri_core.frames import Frame
from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from potpyri_core.stageinput import KEPT_DIR, LostInputError, input_frame, input_header
from tests.support.required import require_module
from tests.support.runs import items_made

require_module("potpyri_gemini")

WCS_CARDS = ("CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1", "CD1_2", "CD2_1", "CD2_2")


def _reduce(pm, root: Path, **params) -> dict[str, list[str]]:
    """Reduce ``root`` (one process, the night's saved catalogs); items per stage that were made."""
    refcat = root / "refcat"
    opts = RunOptions(proc=1, catalogs=(refcat / "gaia_dr3.ecsv", refcat / "ps1.ecsv"), params=params)
    return items_made(Pipeline(pm.instrument("GMOS-N"), root, opts, pm).run())


def _assert_same_products(red_a: Path, red_b: Path) -> None:
    """Workspace frames and stacks of two runs: equal pixels, masks, errors and WCS."""
    names = sorted(q.name for q in (red_a / "workspace").glob("*_red.fits"))
    stacks = sorted(q.name for q in red_a.glob("*.stk.fits"))
    assert names and stacks
    assert names == sorted(q.name for q in (red_b / "workspace").glob("*_red.fits"))
    for rel in [f"workspace/{n}" for n in names] + stacks:
        with fits.open(red_a / rel) as a, fits.open(red_b / rel) as b:
            for ext in ("SCI", "MASK", "ERROR"):
                np.testing.assert_array_equal(a[ext].data, b[ext].data, err_msg=f"{rel} {ext}")
            for key in WCS_CARDS + ("SKYLEVEL", "ZPTMAG", "M5SIGMA"):
                assert a[0].header.get(key) == b[0].header.get(key), (rel, key)


def test_rerun_with_a_changed_sky_parameter_equals_a_fresh_run(tmp_path):
    pm = PluginManager()
    night, fresh = tmp_path / "night", tmp_path / "fresh"
    simulate_instrument_night(pm, pm.instrument("GMOS-N"), night, seed=21, binning=4, n_science=2, n_flats=3,
                              n_bias=3, compression="none")
    shutil.copytree(night, fresh)
    _reduce(pm, night)
    frame = next((night / "red" / "workspace").glob("*_red.fits"))
    sky_before = fits.getval(frame, "SKYLEVEL")
    assert sky_before > 100  # a real sky was subtracted the first time

    again = _reduce(pm, night, sky={"box": 64})
    assert set(again) >= {"sky", "astrometry", "stack", "photometry"} and "frames" not in again
    # the second sky is measured on the frame with its sky, not on a sky-subtracted one (~0 e-)
    assert abs(fits.getval(frame, "SKYLEVEL") - sky_before) < 0.02 * sky_before

    _reduce(pm, fresh, sky={"box": 64})
    _assert_same_products(night / "red", fresh / "red")


def _workspace_frame(path: Path, level: float) -> None:
    """A small workspace frame as the frames stage writes it (FRMKEY, flat sky at ``level``)."""
    frame = Frame(data=np.full((20, 30), level, np.float32), variance=np.full((20, 30), level, np.float32),
                  mask=np.zeros((20, 30), np.uint16), header=fits.Header({"FRMKEY": "f1"}), name=path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_hdul().writeto(path, overwrite=True)


def _rewrite(path: Path, frame: Frame, **cards) -> None:
    """Rewrite ``path`` as a stage does (a new file replaces the old one)."""
    frame.header.update(cards)
    tmp = path.with_name(path.name + ".new")
    frame.to_hdul().writeto(tmp)
    tmp.replace(path)


def test_a_stage_restarts_from_its_kept_input_until_an_earlier_stage_remakes_the_frame(tmp_path):
    path = tmp_path / "workspace" / "N1_red.fits"
    _workspace_frame(path, 500.0)
    first = input_frame(path, "sky", ("FRMKEY",), ("SKYKEY",))
    first.data -= 500.0
    _rewrite(path, first, SKYKEY="s1")
    again = input_frame(path, "sky", ("FRMKEY",), ("SKYKEY",))
    assert float(again.data.mean()) == 500.0  # the pre-sky pixels, not the product's 0
    _workspace_frame(path, 700.0)  # the frames stage remade it (new calibration)
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["FRMKEY"] = "f2"
    assert float(input_frame(path, "sky", ("FRMKEY",), ("SKYKEY",)).data.mean()) == 700.0
    header = input_header(path, "astrometry", ("FRMKEY", "SKYKEY"), ("ASTKEY",))
    assert header["FRMKEY"] == "f2" and (path.parent / KEPT_DIR / "astrometry" / "N1_red.fits.hdr").exists()


def test_a_frame_whose_kept_input_is_gone_is_refused_not_reduced_twice(tmp_path):
    path = tmp_path / "workspace" / "N1_red.fits"
    _workspace_frame(path, 500.0)
    frame = input_frame(path, "sky", ("FRMKEY",), ("SKYKEY",))
    _rewrite(path, frame, SKYKEY="s1")
    shutil.rmtree(path.parent / KEPT_DIR)
    with pytest.raises(LostInputError, match=r"N1_red.fits already went through the sky stage.*--force"):
        input_frame(path, "sky", ("FRMKEY",), ("SKYKEY",))
