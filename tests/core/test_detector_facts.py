"""Per-amplifier detector facts resolved once at assembly: read noise from the number of
reads, saturation and non-linearity scaled by coadds, reference-pixel bias level, the
illuminated circle; the dithered NIR sky from the frames of one target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from potpyri_core.frames import Frame
from potpyri_core.maskbits import Bit
from potpyri_core.params import SkyParams
from potpyri_core.settings import InstrumentSettings, settings_from_package
from potpyri_core.stages import rawformat, sky


def _nir_camera(**detector) -> InstrumentSettings:
    raw = next(r for r in settings_from_package("potpyri_keck") if r["name"] == "MOSFIRE")
    raw = {k: v for k, v in raw.items() if k != "_source"}
    raw["detector"] = {**raw["detector"], **detector}
    raw["detector"]["amplifiers"] = [{**raw["detector"]["amplifiers"][0], "datasec": "[1:64,5:68]"}]
    return InstrumentSettings.model_validate(raw)


def _raw(level: float, value: float, header: dict) -> fits.HDUList:
    data = np.full((72, 64), level, np.float32)
    data[4:68] += value
    return fits.HDUList([fits.PrimaryHDU(data, header=fits.Header(header))])


def test_read_noise_from_reads_and_levels_scaled_by_coadds():
    camera = _nir_camera(nonlinear_adu=30000.0, saturation_adu=40000.0, coadds_keyword="COADDONE",
                         reference_rows=4, output_channels=1)
    header = {"NUMREADS": 16, "COADDONE": 2, "INSTRUME": "MOSFIRE"}
    hdul = _raw(1000.0, 0.0, header)
    hdul[0].data[10, 10] = 1000 + 50000.0   # below 2 coadds x 30000: linear
    hdul[0].data[11, 11] = 1000 + 70000.0   # above 2 x 30000: non-linear, below 2 x 40000
    hdul[0].data[12, 12] = 82000.0          # above 2 x 40000: saturated
    frame = rawformat.assemble(camera, hdul, Path("m.fits"), hdul[0].header)
    (amp,) = frame.amps
    assert amp.readnoise == pytest.approx(5.8 * np.sqrt(2))  # the 16-read entry, x sqrt(2 coadds)
    assert amp.saturation_e == 80000.0 * amp.gain
    assert frame.mask[7, 11] & Bit.NONLINEAR and not frame.mask[7, 11] & Bit.SATURATED
    assert frame.mask[8, 12] & Bit.SATURATED and frame.mask[8, 14] & Bit.NEIGHBOUR
    assert not frame.mask[6, 10] & (Bit.NONLINEAR | Bit.SATURATED)
    # the reference rows gave the bias level: the data are 0 e- but for the injected pixels
    assert abs(float(np.median(frame.data))) < 1e-3
    assert np.allclose(frame.readnoise, 5.8 * np.sqrt(2))


def test_pixels_outside_the_illuminated_circle_are_vignetted():
    camera = _nir_camera(illuminated_radius=20.0)
    hdul = _raw(0.0, 10.0, {"INSTRUME": "MOSFIRE"})
    frame = rawformat.assemble(camera, hdul, Path("m.fits"), hdul[0].header)
    assert frame.mask[32, 32] & Bit.VIGNETTED == 0
    assert frame.mask[0, 0] & Bit.VIGNETTED and frame.mask[63, 63] & Bit.VIGNETTED


def test_dithered_sky_removes_a_sky_that_changes_from_frame_to_frame():
    rng = np.random.default_rng(4)
    ny, nx = 256, 256
    yy, xx = np.indices((ny, nx))
    structure = 1.0 + 0.05 * np.sin(xx / 17.0) * np.cos(yy / 23.0)   # sky pattern fixed on the detector
    frames, truth = [], []
    for i in range(7):
        level = 5000.0 * (1 + 0.04 * np.sin(i))
        stars = np.zeros((ny, nx), np.float32)
        for _ in range(40):   # stars move with the dither
            x, y = rng.uniform(10, nx - 10), rng.uniform(10, ny - 10)
            stars += 3000 * np.exp(-((xx - x - 9 * i) ** 2 + (yy - y) ** 2) / 8.0)
        noise = rng.normal(0, 20.0, (ny, nx))
        data = (level * structure + stars + noise).astype(np.float32)
        header = fits.Header({"MJD-OBS": 60000.0 + i / 1440})
        frames.append(Frame(data, np.full((ny, nx), 400.0, np.float32), np.zeros((ny, nx), np.uint16), header))
        truth.append(stars)
    out = sky.subtract_dither_sky(frames, SkyParams(method="dither", n_nearest=6, box=32))
    for frame, stars in zip(out, truth, strict=True):
        empty = stars < 1.0
        residual = frame.data[empty]
        assert abs(float(np.median(residual))) < 0.2 * 20.0
        assert float(np.std(residual)) < 1.5 * 20.0   # the 5% pattern (250 e-) is gone
        assert frame.header["SKYNFRM"] == 6
