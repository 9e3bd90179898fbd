"""The three real LRIS-blue biases (KOA, 2015-09-10, 2x2, SINGLE:A) assembled by the reduction
into a master bias, against levels and read noise measured here from the raw pixels alone.

The expectations use only the raw extensions (VidInp1..4: 25 prescan, 512 data and 40
overscan columns, PRECOL/POSTPIX of the real headers) and numpy: no potpyri code. The files
are found relative to the repository (``../shared/data``); a missing file is a failure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from potpyri_core.maskbits import Bit
from potpyri_core.params import CalibrationParams
from potpyri_core.plugins import PluginManager

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "keck_lris_blue"
BIASES = [DATA / f"b150910_{n}.fits.gz" for n in (2036, 2037, 2038)]
DATA_COLUMNS = slice(25, 537)
OVERSCAN_COLUMNS = slice(539, 577)  # the first two overscan columns carry charge-transfer tails
FIRST_GOOD_ROW = 8
"""VidInp1/2 start each readout 350-30 ADU low over the first ~4 rows, and their overscan does
not follow (633 vs 754 ADU in row 1 of b150910_2036): those rows cannot be corrected by the
overscan; assembly flags them BAD (``readout_start_rows``) and they are left out here."""
READ_NOISE_ADU = 2.0


def _clipped(values: np.ndarray, sigma: float = 4.0) -> np.ndarray:
    v = values.ravel().astype(float)
    for _ in range(5):
        centre, std = np.mean(v), np.std(v)
        v = v[np.abs(v - centre) < sigma * std]
    return v


def clipped_std(values: np.ndarray) -> float:
    """Standard deviation after iterative 4-sigma clipping (hot pixels, cosmic rays)."""
    return float(np.std(_clipped(values)))


def clipped_mean(values: np.ndarray) -> float:
    """Mean after iterative 4-sigma clipping (the raw values are integers: a median is too coarse)."""
    return float(np.mean(_clipped(values)))


@pytest.fixture(scope="module")
def raw_amps() -> dict[str, list[np.ndarray]]:
    """Raw pixels of each VidInp extension of the three biases."""
    missing = [p for p in BIASES if not p.exists()]
    assert not missing, f"real LRIS-blue biases not found (expected beside the repository): {missing}"
    out: dict[str, list[np.ndarray]] = {}
    for path in BIASES:
        with fits.open(path) as hdul:
            for ext in hdul[1:]:
                out.setdefault(ext.header["EXTNAME"], []).append(ext.data.astype(np.float64))
    return out


@pytest.fixture(scope="module")
def reduced():
    """The biases assembled by the LRIS plugin and combined into a master."""
    pm = PluginManager()
    settings = pm.instrument("LRIS")
    hooks = pm.for_instrument("LRIS")
    frames = []
    for path in BIASES:
        with fits.open(path) as hdul:
            frames.append(hooks.potpyri_assemble(instrument=settings, hdul=hdul, path=path))
    master = hooks.potpyri_build_calibration(instrument=settings, kind="bias", frames=frames, group="lris-blue",
                                             params=CalibrationParams())
    return frames, master


def amp_pixels(frame, amp_index: int, amp_map: np.ndarray) -> np.ndarray:
    """Finite pixels of one amplifier (``amp_map`` of an assembled frame) above the first rows."""
    values = frame.data[FIRST_GOOD_ROW:][amp_map[FIRST_GOOD_ROW:] == amp_index]
    return values[np.isfinite(values)]


def test_four_amplifiers_assembled(reduced):
    frames, _ = reduced
    assert [a.name for a in frames[0].amps] == [f"blue-VidInp{i}" for i in range(1, 5)]
    assert frames[0].data.shape == (2048, 2069)  # 2 x 1024 data columns + the 41-px gap at 2x2 (20.5 -> 21)


def test_master_bias_level_per_amplifier(raw_amps, reduced):
    frames, master = reduced
    for index, amp in enumerate(frames[0].amps):
        raw = raw_amps[amp.name.removeprefix("blue-")]
        expected_adu = np.mean([clipped_mean(r[FIRST_GOOD_ROW:, DATA_COLUMNS])
                                - clipped_mean(r[FIRST_GOOD_ROW:, OVERSCAN_COLUMNS]) for r in raw])
        level = clipped_mean(amp_pixels(master, index, frames[0].amp_map))
        assert abs(level - expected_adu * amp.gain) < 0.3, (amp.name, level, expected_adu * amp.gain)


def test_frame_and_master_noise_per_amplifier(raw_amps, reduced):
    frames, master = reduced
    for index, amp in enumerate(frames[0].amps):
        raw = raw_amps[amp.name.removeprefix("blue-")]
        read_noise_adu = clipped_std(raw[0][:, OVERSCAN_COLUMNS] - raw[1][:, OVERSCAN_COLUMNS]) / np.sqrt(2)
        pair = (amp_pixels(frames[0], index, frames[0].amp_map) - amp_pixels(frames[1], index, frames[0].amp_map)) / np.sqrt(2)
        frame_adu = clipped_std(pair) / amp.gain
        assert abs(frame_adu / read_noise_adu - 1) < 0.10, (amp.name, frame_adu, read_noise_adu)
        # the master keeps the real fixed bias pattern on top of read noise / sqrt(3)
        master_adu = clipped_std(amp_pixels(master, index, frames[0].amp_map)) / amp.gain
        assert 0.95 < master_adu / (read_noise_adu / np.sqrt(len(frames))) < 1.25, (amp.name, master_adu)


def test_settings_read_noise_against_the_overscan(raw_amps, reduced):
    frames, _ = reduced
    for amp in frames[0].amps:
        raw = raw_amps[amp.name.removeprefix("blue-")]
        measured_e = amp.gain * clipped_std(raw[0][:, OVERSCAN_COLUMNS] - raw[1][:, OVERSCAN_COLUMNS]) / np.sqrt(2)
        # the published values (Keck LRIS page) are 8-25% above this 2015 night's overscan noise
        assert 0.75 < measured_e / amp.readnoise <= 1.0, (amp.name, measured_e, amp.readnoise)


def test_rows_the_overscan_cannot_correct_are_flagged(raw_amps, reduced):
    """Rows whose data-minus-overscan level is off by more than the read noise are exactly
    the rows flagged BAD at assembly."""
    frames, _ = reduced
    for index, amp in enumerate(frames[0].amps):
        raw = raw_amps[amp.name.removeprefix("blue-")][0]
        rows = np.median(raw[:, DATA_COLUMNS], axis=1) - np.median(raw[:, OVERSCAN_COLUMNS], axis=1)
        off = np.flatnonzero(np.abs(rows[:FIRST_GOOD_ROW] - np.median(rows[FIRST_GOOD_ROW:])) > READ_NOISE_ADU)
        on_amp = frames[0].amp_map == index
        flagged = np.flatnonzero([((frames[0].mask[r][on_amp[r]] & Bit.BAD) > 0).all() for r in range(FIRST_GOOD_ROW)])
        assert list(flagged) == list(off), (amp.name, list(flagged), list(off))
