"""Assembly of real raw Keck LRIS-blue files (``<repo>/../shared/data/keck_lris_blue``).

Every expectation is computed here from the raw pixels and raw header cards with plain
numpy: the overscan columns are those right of the raw ``DATASEC``, the mosaic column of a
raw pixel follows from the raw ``DETSEC`` (reversed = read out from the other side) and the
binning. Only the per-amplifier gains are taken from the settings (a bias cannot measure
them); the read noise is measured here and compared with the settings.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from potpyri_core.frames import Frame
from potpyri_core.maskbits import Bit
from potpyri_core.plugins import PluginManager
from potpyri_core.rawio import open_raw
from potpyri_core.settings import InstrumentSettings
from potpyri_core.stages.classify import classify, read_header
from tests.support.required import SHARED_DATA, require_module, require_path

LRIS = SHARED_DATA / "keck_lris_blue"
BIAS = "b150910_2036"
ARC = "LB.20160109.14149"  # arc lines: structure on the scale of a few columns, continuous across amplifiers
BIN = 2


def clipped(values: np.ndarray, sigma: float = 4.0) -> tuple[float, float]:
    """Mean and standard deviation of ``values`` after iterative ``sigma`` clipping (float64)."""
    v = np.asarray(values, float).ravel()
    keep = np.ones(v.size, bool)
    for _ in range(5):
        mean, std = v[keep].mean(), v[keep].std()
        keep = np.abs(v - mean) < sigma * std
    return float(v[keep].mean()), float(v[keep].std())


def section(text: str) -> tuple[int, int, int, int]:
    """``[x1:x2,y1:y2]`` as four ints, order kept (x1 > x2 means reversed)."""
    x1, x2, y1, y2 = (int(v) for v in re.findall(r"\d+", text))
    return x1, x2, y1, y2


@pytest.fixture(scope="module")
def lris() -> tuple[InstrumentSettings, object]:
    """The LRIS settings and its hooks (the potpyri-keck plugin is required)."""
    require_module("potpyri_keck")
    pm = PluginManager()
    return pm.instrument("LRIS"), pm.for_instrument("LRIS")


def assemble(lris: tuple[InstrumentSettings, object], path: Path) -> tuple[Frame, fits.HDUList]:
    """Assembled frame and the raw file's HDUs (pixels as float64 copies)."""
    settings, hooks = lris
    with open_raw(require_path(path)) as hdul:
        frame = hooks.potpyri_assemble(instrument=settings, hdul=hdul, path=path)
        raw = fits.HDUList([fits.PrimaryHDU(header=hdul[0].header)]
                           + [fits.ImageHDU(np.asarray(h.data, float), header=h.header) for h in hdul[1:]])
    return frame, raw


def raw_layout(raw: fits.HDUList) -> list[dict]:
    """Per raw extension: data/overscan column ranges and the mosaic columns, from the raw header.

    CCDs are told apart by ``CCDNAME``; the mosaic puts them left to right in DETSEC order,
    so its first column is the first DETSEC column.
    """
    out = []
    for i, hdu in enumerate(raw[1:], start=1):
        dx1, dx2, dy1, dy2 = section(hdu.header["DATASEC"])
        tx1, tx2, _, _ = section(hdu.header["DETSEC"])
        out.append({"ext": i, "ccd": hdu.header["CCDNAME"], "data_x": slice(dx1 - 1, dx2), "data_y": slice(dy1 - 1, dy2),
                    "over_x": slice(dx2 + 2, hdu.data.shape[1]),  # 2 columns of charge-transfer tail skipped
                    "det_lo": (min(tx1, tx2) - 1) // BIN, "reversed": tx1 > tx2})
    return out


def amp_columns(frame: Frame, index: int) -> np.ndarray:
    """Mosaic columns that hold amplifier ``index`` (from the frame's amplifier map)."""
    return np.flatnonzero((frame.amp_map == index).any(axis=0))


def test_bias_levels_and_read_noise_from_the_raw_overscan(lris):
    frame, raw = assemble(lris, LRIS / f"{BIAS}.fits.gz")
    settings, _ = lris
    amps = [a for a in settings.detector.amplifiers if a.applies_to(raw[0].header)]
    assert len(amps) == len(frame.amps) == 4
    for index, (lay, amp) in enumerate(zip(raw_layout(raw), amps, strict=True)):
        pixels = raw[lay["ext"]].data
        level_adu, _ = clipped(pixels[lay["data_y"], lay["data_x"]])
        over_adu, noise_adu = clipped(pixels[lay["data_y"], lay["over_x"]])
        assembled = frame.data[frame.amp_map == index]
        level_e, noise_e = clipped(assembled)
        # bias-subtracted bias: the data level above the overscan, in electrons
        assert level_e == pytest.approx((level_adu - over_adu) * amp.gain, abs=0.15), amp.name
        # the noise of an assembled bias is the read noise measured in the raw overscan
        assert noise_e == pytest.approx(noise_adu * amp.gain, rel=0.06), amp.name
        assert amp.readnoise == pytest.approx(noise_adu * amp.gain, rel=0.12), (amp.name, noise_adu * amp.gain)
        assert frame.amps[index].gain == amp.gain


def test_mosaic_columns_follow_the_raw_detsec(lris):
    frame, raw = assemble(lris, LRIS / f"{BIAS}.fits.gz")
    layout = raw_layout(raw)
    ccds = list(dict.fromkeys(lay["ccd"] for lay in layout))
    assert len(ccds) == 2
    # the first CCD starts at the mosaic's first column and its amplifiers abut
    first = [i for i, lay in enumerate(layout) if lay["ccd"] == ccds[0]]
    cols = np.concatenate([amp_columns(frame, i) for i in first])
    assert cols.min() == layout[first[0]]["det_lo"] == 0
    assert np.array_equal(np.sort(cols), np.arange(cols.min(), cols.min() + cols.size))
    for i, lay in enumerate(layout):
        width = lay["data_x"].stop - lay["data_x"].start
        assert amp_columns(frame, i).size == width
        assert (frame.amp_map[:, amp_columns(frame, i)] == i).all()
    # within each CCD the mosaic order is the DETSEC order
    for ccd in ccds:
        members = [i for i, lay in enumerate(layout) if lay["ccd"] == ccd]
        starts = [amp_columns(frame, i).min() - layout[i]["det_lo"] for i in members]
        assert len(set(starts)) == 1, (ccd, starts)  # one offset per CCD (its gap), the same for its amplifiers
    assert starts[0] >= 0
    assert (frame.mask[:, amp_columns(frame, 1).max() + 1:amp_columns(frame, 2).min()] & Bit.NO_DATA).all()


def test_adjacent_columns_across_amplifier_boundaries_are_neighbours_on_the_chip(lris):
    """Arc lines vary on the scale of a few columns: the columns either side of the boundary
    between two amplifiers of one CCD must correlate as neighbours do (a wrong flip puts the
    far edge of an amplifier there: correlation ~0)."""
    frame, raw = assemble(lris, LRIS / f"{ARC}.fits.gz")
    layout = raw_layout(raw)
    rows = slice(200, 1800)
    for left, right in ((0, 1), (2, 3)):
        assert layout[left]["ccd"] == layout[right]["ccd"]
        b = amp_columns(frame, right).min()
        assert b == amp_columns(frame, left).max() + 1
        across = np.corrcoef(frame.data[rows, b - 1], frame.data[rows, b])[0, 1]
        within = np.corrcoef(frame.data[rows, b - 2], frame.data[rows, b - 1])[0, 1]
        far = np.corrcoef(frame.data[rows, b - 1], frame.data[rows, amp_columns(frame, right).max()])[0, 1]
        assert within > 0.2 and abs(far) < 0.1  # the premise: local structure
        assert across > 0.5 * within, (left, right, across, within)


def test_saturated_pixels_and_their_neighbours_are_flagged_where_the_raw_pixel_maps(lris):
    settings, hooks = lris
    path = require_path(LRIS / f"{BIAS}.fits.gz")
    with open_raw(path) as hdul:
        hdus = fits.HDUList([fits.PrimaryHDU(header=hdul[0].header)]
                            + [fits.ImageHDU(np.array(h.data), header=h.header) for h in hdul[1:]])
    layout = raw_layout(hdus)
    ext = 2  # DETSEC reversed in x: raw column c lands at the mirrored mosaic column
    lay = layout[ext - 1]
    assert lay["reversed"]
    raw_y, raw_x = 1000, lay["data_x"].start + 40
    level = settings.detector.saturation_adu
    hdus[ext].data[raw_y, raw_x] = level  # exactly at the saturation level (clipped pixels are)
    frame = hooks.potpyri_assemble(instrument=settings, hdul=hdus, path=path)
    width = lay["data_x"].stop - lay["data_x"].start
    x = lay["det_lo"] + (width - 1 - (raw_x - lay["data_x"].start))
    y = raw_y - lay["data_y"].start
    saturated = np.argwhere((frame.mask & Bit.SATURATED) > 0)
    assert saturated.tolist() == [[y, x]]
    neighbour = (frame.mask & Bit.NEIGHBOUR) > 0
    ring = np.zeros_like(neighbour)
    ring[y - 2:y + 3, x - 2:x + 3] = True
    ring[y, x] = False
    assert np.array_equal(neighbour, ring)


@pytest.mark.parametrize("stem", ["b150910_2070", "b150910_2083", "LB.20160109.57204", "LB.20160109.58013"])
def test_exposure_time_is_the_shutter_interval(lris, stem):
    """The classified exposure equals DATE_END - DATE_BEG of the raw header (1 s resolution)."""
    settings, _ = lris
    path = require_path(LRIS / f"{stem}.fits.gz")
    header = read_header(settings, path)
    interval = (Time(header["DATE_END"]) - Time(header["DATE_BEG"])).sec
    assert interval > 10
    assert classify(settings, header, path).exptime == pytest.approx(interval, abs=1.0)
