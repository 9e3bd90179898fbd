"""Master bias / dark / flat and their application, on synthetic frames with known answers.

The frames are drawn here from a known bias level, dark current, flat pattern and sky with
Poisson and read noise; the calibrated frame must give back the sky, and its variance must
match the scatter of many independent realisations (Monte Carlo), not a formula.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from potpyri_core.frames import AmpFacts, Frame
from potpyri_core.maskbits import Bit
from potpyri_core.stages.calibrate import MissingCalibrationError, apply_calibrations, build_master

SHAPE = (64, 96)
READ_NOISE = 4.0
BIAS_E = 300.0
DARK_E_PER_S = 0.5
EXPTIME = 60.0
SKY_E = 2000.0
GAP = np.s_[:, 40:44]


def flat_pattern() -> np.ndarray:
    """A vignetting-like gradient times pixel-to-pixel structure, unnormalised."""
    yy, xx = np.indices(SHAPE)
    rng = np.random.default_rng(11)
    return (0.8 + 0.4 * xx / SHAPE[1] - 0.1 * yy / SHAPE[0]) * rng.normal(1.0, 0.02, SHAPE)


def frame(data: np.ndarray, exptime: float, name: str) -> Frame:
    """An assembled frame (e-) with one amplifier, the gap columns flagged NO_DATA."""
    mask = np.zeros(SHAPE, np.uint16)
    mask[GAP] = Bit.NO_DATA
    data = np.where(mask > 0, 0.0, data).astype(np.float32)
    out = Frame(data=data, variance=np.zeros(SHAPE, np.float32), mask=mask, header=fits.Header(), name=name,
                amps=[AmpFacts("A", 1.0, READ_NOISE, 1e9)], amp_map=np.zeros(SHAPE, np.uint8))
    out.meta["exptime"] = exptime
    return out


def exposure(rng: np.random.Generator, signal: np.ndarray, exptime: float) -> np.ndarray:
    """Bias + dark + signal with Poisson noise on the charge and read noise (e-)."""
    charge = rng.poisson(np.clip(signal + DARK_E_PER_S * exptime, 0, None)).astype(float)
    return BIAS_E + charge + rng.normal(0.0, READ_NOISE, SHAPE)


@pytest.fixture(scope="module")
def masters() -> dict[str, Frame]:
    rng = np.random.default_rng(5)
    biases = [frame(exposure(rng, np.zeros(SHAPE), 0.0), 0.0, f"b{i}") for i in range(5)]
    bias = build_master("bias", biases, 3, "bias_test")
    darks = []
    for i in range(5):
        raw = frame(exposure(rng, np.zeros(SHAPE), 300.0), 300.0, f"d{i}")
        darks.append(apply_calibrations(raw, {"bias": bias}, 300.0))
    dark = build_master("dark", darks, 3, "dark_test")
    flats = []
    pattern = flat_pattern()
    for i, level in enumerate((20000.0, 25000.0, 30000.0, 22000.0, 28000.0)):
        raw = frame(exposure(rng, level * pattern, 2.0), 2.0, f"f{i}")
        flats.append(apply_calibrations(raw, {"bias": bias, "dark": dark}, 2.0))
    flat = build_master("flat", flats, 3, "flat_test")
    return {"bias": bias, "dark": dark, "flat": flat}


def good() -> np.ndarray:
    keep = np.ones(SHAPE, bool)
    keep[GAP] = False
    return keep


def test_master_bias_is_the_level_with_the_variance_of_a_mean(masters):
    bias = masters["bias"]
    assert np.mean(bias.data[good()]) == pytest.approx(BIAS_E, abs=0.1)
    # mean of 5 frames of read noise (the bias frames carry no dark charge)
    assert np.std(bias.data[good()]) == pytest.approx(READ_NOISE / np.sqrt(5), rel=0.1)
    assert np.median(bias.variance[good()]) == pytest.approx(READ_NOISE**2 / 5, rel=0.25)
    assert (bias.mask[GAP] == Bit.NO_DATA).all() and not bias.mask[good()].any()


def test_master_dark_is_in_electrons_per_second(masters):
    assert np.mean(masters["dark"].data[good()]) == pytest.approx(DARK_E_PER_S, rel=0.02)


def test_master_flat_is_the_normalised_pattern(masters):
    pattern = flat_pattern()
    expected = pattern / np.median(pattern[good()])
    ratio = masters["flat"].data[good()] / expected[good()]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.002)
    assert np.std(ratio) < 0.005  # photon noise of ~1.2e5 e- summed per pixel


def test_calibrated_frame_gives_back_the_sky_with_its_monte_carlo_variance(masters):
    rng = np.random.default_rng(9)
    pattern = flat_pattern()
    norm = pattern / np.median(pattern[good()])
    runs = [apply_calibrations(frame(exposure(rng, SKY_E * norm, EXPTIME), EXPTIME, f"s{i}"), masters, EXPTIME)
            for i in range(200)]
    data = np.stack([r.data for r in runs])
    g = good()
    # flat-fielded sky is flat: the known sky level everywhere
    assert np.mean(data[:, g]) == pytest.approx(SKY_E, rel=0.002)
    column_means = data[:, g].mean(axis=0)
    assert np.std(column_means) < 0.01 * SKY_E
    # the error map is the scatter between independent exposures (masters are the same in
    # every run, so their noise is a fixed offset: compare with the scatter of the frames)
    measured = data[:, g].var(axis=0, ddof=1)
    predicted = np.mean([r.variance[g] for r in runs], axis=0)
    masters_var = (masters["bias"].variance[g] + masters["dark"].variance[g] * EXPTIME**2) / masters["flat"].data[g]**2
    ratio = measured / (predicted - masters_var)
    for part in (norm[g] < 0.92, norm[g] > 1.08):  # dim and bright parts of the flat
        assert part.sum() > 300
        assert np.median(ratio[part]) == pytest.approx(1.0, abs=0.04)
    assert runs[0].header["EXPTIME"] == EXPTIME


def test_dark_is_scaled_to_the_exposure_time(masters):
    """A frame with no light: after bias and dark, nothing is left, whatever its exposure."""
    rng = np.random.default_rng(4)
    for exptime in (10.0, 600.0):
        out = apply_calibrations(frame(exposure(rng, np.zeros(SHAPE), exptime), exptime, "d"),
                                 {k: masters[k] for k in ("bias", "dark")}, exptime)
        assert np.mean(out.data[good()]) == pytest.approx(0.0, abs=0.3 + 0.005 * DARK_E_PER_S * exptime)


def test_mask_bits_are_combined_with_or(masters):
    """A gap pixel is NO_DATA in the frame and in every master: it stays exactly NO_DATA."""
    rng = np.random.default_rng(2)
    science = frame(exposure(rng, np.full(SHAPE, SKY_E), EXPTIME), EXPTIME, "s")
    science.mask[5, 5] |= Bit.SATURATED
    flat = masters["flat"]
    flat_bad = Frame(flat.data, flat.variance, flat.mask.copy(), flat.header, flat.name)
    flat_bad.mask[5, 5] |= Bit.BAD
    flat_bad.mask[6, 6] |= Bit.BAD
    out = apply_calibrations(science, {"bias": masters["bias"], "dark": masters["dark"], "flat": flat_bad}, EXPTIME)
    assert (out.mask[GAP] == Bit.NO_DATA).all()
    assert out.mask[5, 5] == Bit.SATURATED | Bit.BAD
    assert out.mask[6, 6] == Bit.BAD
    assert int((out.mask[good()] > 0).sum()) == 2


def test_dead_flat_pixels_and_hot_bias_pixels_are_bad():
    rng = np.random.default_rng(3)
    biases = []
    for i in range(3):
        data = BIAS_E + rng.normal(0, READ_NOISE, SHAPE)
        data[10, 10] += 500.0  # hot in every bias
        biases.append(frame(data, 0.0, f"b{i}"))
    bias = build_master("bias", biases, 3, "bias_test")
    flats = []
    for i in range(3):
        data = 20000.0 * flat_pattern() + rng.normal(0, 140, SHAPE)
        data[20, 20] *= 0.35  # dead: below half the local level, above the unlit level (0.2)
        data[30, 30] *= 1.8  # hot: above 1.5 times the local level
        flats.append(frame(data, 1.0, f"f{i}"))
    flat = build_master("flat", flats, 3, "flat_test")
    assert np.argwhere(bias.mask & Bit.BAD).tolist() == [[10, 10]]
    assert np.argwhere(flat.mask & Bit.BAD).tolist() == [[20, 20], [30, 30]]


def test_too_few_frames_is_a_clear_error():
    with pytest.raises(MissingCalibrationError, match="2 frame"):
        build_master("bias", [frame(np.zeros(SHAPE), 0.0, "a"), frame(np.zeros(SHAPE), 0.0, "b")], 3, "g")
