"""Simulate a small night of an installed instrument, reduce it, and measure it against the
truth: shared by the NIR end-to-end tests and ``benchmarks/instruments_table.py``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from potpyri_core.options import RunOptions
from potpyri_core.pipeline import Pipeline
from potpyri_core.plugins import PluginManager
from potpyri_core.settings import InstrumentSettings
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from potpyri_core.simulate.nir import window
from potpyri_core.simulate.truthcheck import TruthCheck
from potpyri_core.stages.sky import source_pixels

NIR_NIGHTS: dict[str, tuple[str, float]] = {"MOSFIRE": ("K", 30.0), "F2": ("K", 15.0), "MMIRS": ("J", 10.0),
                                             "FourStar": ("J", 30.0)}
"""Band and exposure (s, all coadds) of each NIR instrument's test night, short enough that the
2MASS stars do not saturate. MMIRS saturates at 46000 ADU x 0.95 e-/ADU: in 30 s of J the sky
is half of it and a J = 16 AB star's peak the other half (ZP from the few faintest 2MASS stars:
+0.050 +- 0.047 measured); in 60 s the sky alone saturates."""


@dataclass(frozen=True)
class NightFigures:
    """Figures of one reduced simulated night (see :func:`reduce_small_night`)."""

    instrument: str
    frames: int
    seconds: float
    astrometric_rms: float
    zero_point_error: float
    zero_point_uncertainty: float
    m5_error: float
    noise_ratio: float
    empty_sky_residual: float
    """Median of the stack in empty sky over its ERROR (sigma)."""
    failures: int


def small_instrument(instrument: InstrumentSettings, size: int) -> InstrumentSettings:
    """NIR arrays cut to ``size`` px (:func:`~potpyri_core.simulate.nir.window`); optical as is."""
    return window(instrument, size) if instrument.band == "nir" else instrument


def empty_sky_residual(stack: Path) -> float:
    """Median of the stack's usable, source-free pixels divided by their median ERROR."""
    with fits.open(stack) as hdul:
        data, error, mask = hdul["SCI"].data, hdul["ERROR"].data, hdul["MASK"].data
    bad = (mask != 0) | ~(error > 0)
    empty = ~bad & ~source_pixels(np.where(bad, 0, data), bad)
    return float(np.median(data[empty]) / np.median(error[empty]))


def dithered_sky_frames(reduced: list[Path]) -> float | None:
    """Frames per dithered sky (``SKYNFRM`` of the reduced frames; harmonic mean, as their
    ``1/N`` variances average), None when some frame's sky was not made from the dithers."""
    counts = [fits.getheader(q).get("SKYNFRM") for q in reduced]
    if not counts or not all(counts):
        return None
    return len(counts) / sum(1.0 / n for n in counts)


def reduce_small_night(pm: PluginManager, name: str, root: Path, band: str, exptime: float, size: int = 1024,
                       n_science: int = 9, seed: int = 3, proc: int = 2) -> tuple[NightFigures, TruthCheck]:
    """Simulate ``n_science`` dithered frames (plus the calibrations the instrument needs),
    reduce them with the saved reference catalogs and compare with the truth.

    Parameters
    ----------
    pm : PluginManager
        The installed plugins.
    name : str
        Instrument name.
    root : Path
        Empty folder for the night.
    band, exptime : str, float
        Filter and science exposure (s; for coadding arrays, all coadds).
    size : int
        Side (px) NIR arrays are cut to.
    """
    instrument = small_instrument(pm.instrument(name), size)
    paths = simulate_instrument_night(pm, instrument, root, seed=seed, n_science=n_science, band=band,
                                      exptime=exptime)
    wanted = {"gaia", instrument.zeropoint.catalog_for(band, 90.0) or ""}
    catalogs = tuple(Path(p) for key, p in paths["refcat"].items() if key in wanted)
    start = time.perf_counter()
    out_size = None if instrument.band != "nir" else size + 400
    pipeline = Pipeline(instrument, root, RunOptions(proc=proc, catalogs=catalogs, out_size=out_size), pm)
    summary = pipeline.run()
    seconds = time.perf_counter() - start
    stack = summary.stacks[0]
    reduced = sorted((root / "red" / "workspace").glob("*_red.fits"))
    with fits.open(reduced[0]) as hdul:
        read_noise = float(np.median([hdul["AMPMAP"].header[f"AMPRN{i}"]
                                      for i in range(hdul["AMPMAP"].header["NAMPS"])]))
    check = TruthCheck(root, stack, {}, read_noise)
    rms, _ = check.astrometric_rms()
    header = check.header
    figures = NightFigures(name, n_science, seconds, rms, check.zero_point_error(), float(header["ZPTMUCER"]),
                           float(header["M5SIGMA"] - check.m5_truth(dithered_sky_frames(reduced))), check.error_over_noise(),
                           empty_sky_residual(stack), len(summary.failures))
    return figures, check
