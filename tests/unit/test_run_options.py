"""What ``--fieldcenter``, ``--out-size`` and ``--target`` do, through :class:`Pipeline` on a
tiny binning-4 GMOS-N night (2 science frames; one renamed to a second target).

The geometry checks do not trust any WCS: a star seen in the default stack must appear in
the stack centred ``OFFSET`` arcsec further north exactly ``OFFSET / scale`` pixels lower,
whatever the (deliberately wrong) header WCS says. ``--skip-*`` hooks are covered by
``tests/core/test_pipeline_contract.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS
from scipy import ndimage

from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from tests.support.required import require_module

require_module("potpyri_gemini")

BINNING = 4
OFFSET = 30.0  # arcsec north
QUICK = ("sort", "calibrations", "frames", "stack")


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PluginManager]:
    root = tmp_path_factory.mktemp("options_night")
    pm = PluginManager()
    simulate_instrument_night(pm, pm.instrument("GMOS-N"), root, seed=4, binning=BINNING, n_science=2,
                              compression="none")
    science = sorted(p for p in root.glob("*.fits") if fits.getval(p, "OBSTYPE") == "OBJECT"
                     and fits.getval(p, "OBSCLASS") == "science")
    assert len(science) == 2
    with fits.open(science[1], mode="update") as hdul:
        hdul[0].header["OBJECT"] = "OTHERFIELD"
    return root, pm


def reduce(night: tuple[Path, PluginManager], **options: object) -> Pipeline:
    root, pm = night
    pipeline = Pipeline(pm.instrument("GMOS-N"), root, RunOptions(proc=1, skip_cr=True, **options), pm)
    pipeline.summary = pipeline.run()
    return pipeline


def brightest_peak(image: np.ndarray) -> tuple[float, float]:
    """(x, y) centroid of the brightest compact source of ``image`` (3x3 smoothed peak)."""
    smooth = ndimage.uniform_filter(np.nan_to_num(image), 3)
    y, x = np.unravel_index(np.argmax(smooth), smooth.shape)
    box = image[y - 4:y + 5, x - 4:x + 5]
    yy, xx = np.mgrid[y - 4:y + 5, x - 4:x + 5]
    w = np.clip(box - np.median(image), 0, None)
    return float((xx * w).sum() / w.sum()), float((yy * w).sum() / w.sum())


def test_fieldcenter_and_out_size_set_the_stack_grid(night):
    default = reduce(night, target="SIMFIELD", stages=QUICK)
    assert not default.summary.failures, default.summary.table()
    stack = default.summary.stacks[0]
    with fits.open(stack) as hdul:
        base, base_header = hdul[0].data.copy(), hdul[0].header.copy()
    scale = 0.0807 * BINNING
    assert base.shape == (3200 // BINNING,) * 2  # the instrument's out_size
    centre = WCS(base_header).pixel_to_world((base.shape[1] - 1) / 2, (base.shape[0] - 1) / 2)
    north = centre.directional_offset_by(0 * u.deg, OFFSET * u.arcsec)
    moved = reduce(night, target="SIMFIELD", stages=("stack",), fieldcenter=(north.ra.deg, north.dec.deg),
                   out_size=1600)
    assert not moved.summary.failures, moved.summary.table()
    with fits.open(moved.summary.stacks[0]) as hdul:
        shifted, header = hdul[0].data, hdul[0].header
    assert shifted.shape == (1600 // BINNING,) * 2
    grid = WCS(header)
    centre_now = grid.pixel_to_world((shifted.shape[1] - 1) / 2, (shifted.shape[0] - 1) / 2)
    assert centre_now.separation(north).arcsec < 0.01
    # the same star, found in the pixels of both stacks (the smaller stack is the centre of
    # the default grid, shifted north): dy = -OFFSET / scale, dx = -(800 - 400) / 2
    half = (base.shape[0] - shifted.shape[0]) // 2
    x1, y1 = brightest_peak(shifted)
    x0, y0 = brightest_peak(base[int(y1 + half + OFFSET / scale) - 20:int(y1 + half + OFFSET / scale) + 21,
                                 int(x1 + half) - 20:int(x1 + half) + 21])
    x0 += int(x1 + half) - 20
    y0 += int(y1 + half + OFFSET / scale) - 20
    assert x0 - x1 == pytest.approx(half, abs=0.3)
    assert y0 - y1 == pytest.approx(half + OFFSET / scale, abs=0.3)


def test_target_reduces_only_that_target(night):
    run = reduce(night, target="OTHERFIELD", stages=QUICK)
    assert not run.summary.failures, run.summary.table()
    assert [p.name.split(".")[0] for p in run.summary.stacks] == ["OTHERFIELD"]
    provenance = fits.getdata(run.summary.stacks[0], "PROVENANCE")
    assert len(provenance) == 1  # one frame: the renamed one
    assert set(run.table[run.table["Type"] == "SCIENCE"]["Target"]) == {"OTHERFIELD"}


def test_unknown_target_names_the_targets_present(night):
    run = reduce(night, target="NOPE", stages=("sort",))
    messages = " ".join(r.message for r in run.summary.failures)
    assert "no SCIENCE frames of target NOPE" in messages
    assert "targets present: OTHERFIELD, SIMFIELD" in messages
