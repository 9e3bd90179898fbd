"""Near-infrared parts of the simulator: a sky that changes from frame to frame with a
pattern fixed on the detector, hot pixels, coadds read one by one, reference pixels with a
bias offset per output channel, and cut-down detectors for fast test nights.

The raw layout stays the instrument's: :func:`pack_coadds` packs each coadd with the core
packer (:func:`potpyri_core.stages.rawformat.pack`) and then writes what an NIR array adds.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np
from astropy.io import fits

from potpyri_core.settings import InstrumentSettings, parse_section
from potpyri_core.stages.rawformat import pack

CHANNEL_OFFSET_ADU = 40.0
"""RMS of the bias offsets between output channels (ADU per coadd)."""


def window(instrument: InstrumentSettings, size: int) -> InstrumentSettings:
    """The instrument with each amplifier's data section cut to ``size`` x ``size`` pixels.

    The reference-pixel border and the raw layout keep their real form; the illuminated
    circle shrinks with the detector. For test nights that must run in seconds.

    Parameters
    ----------
    instrument : InstrumentSettings
        Amplifiers must give ``datasec`` in the settings.
    size : int
        Side of the data section (unbinned px).
    """
    amps, full = [], None
    for amp in instrument.detector.amplifiers:
        if amp.datasec is None:
            raise ValueError(f"{instrument.name} amplifier {amp.name}: window() needs datasec in the settings")
        x1, x2, y1, y2 = parse_section(amp.datasec)
        full = max(x2 - x1 + 1, y2 - y1 + 1)
        amps.append(amp.model_copy(update={"datasec": f"[{x1}:{x1 + size - 1},{y1}:{y1 + size - 1}]"}))
    radius = instrument.detector.illuminated_radius
    detector = instrument.detector.model_copy(update={
        "amplifiers": amps, "illuminated_radius": None if radius is None else radius * size / full,
        "output_channels": max(1, instrument.detector.output_channels * size // full)})
    return instrument.model_copy(update={"detector": detector})


def sky_pattern(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Sky structure fixed on the detector (thermal glow and scattered light), mean 0, RMS 1."""
    rng = np.random.default_rng([seed, 81])
    yy, xx = np.indices(shape, dtype=np.float32)
    ny, nx = shape
    pattern = np.zeros(shape, np.float32)
    for _ in range(3):
        kx, ky = rng.uniform(1.0, 3.0, 2) * 2 * np.pi
        phase = rng.uniform(0, 2 * np.pi)
        pattern += np.sin(kx * xx / nx + phase) * np.cos(ky * yy / ny)
    glow = np.exp(-((xx - 0.1 * nx) ** 2 + (yy - 0.9 * ny) ** 2) / (0.08 * nx * ny))
    pattern += 2.0 * glow
    pattern -= pattern.mean()
    return (pattern / pattern.std()).astype(np.float32)


def hot_pixels(shape: tuple[int, int], seed: int, fraction: float = 2e-4) -> np.ndarray:
    """Dark current (e-/s) of hot pixels fixed on the detector (zero elsewhere)."""
    rng = np.random.default_rng([seed, 82])
    rate = np.zeros(shape, np.float32)
    n = int(fraction * shape[0] * shape[1])
    iy, ix = rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)
    rate[iy, ix] = rng.uniform(5.0, 200.0, n)
    return rate


def _coadds(instrument: InstrumentSettings, kind: str) -> tuple[str | None, int]:
    key = instrument.detector.coadds_keyword
    sim = instrument.simulation
    cards = {**sim.primary, **sim.kinds.get(kind, {})} if sim else {}
    return key, int(cards.get(key, 1)) if key else 1


def pack_coadds(instrument: InstrumentSettings, exposure: Any, binning: int, rng: np.random.Generator
                ) -> fits.HDUList:
    """Pack an NIR exposure: each coadd read on its own and summed, as the array writes it.

    Each coadd gets its share of the electrons, its read noise and its saturation
    (:func:`~potpyri_core.stages.rawformat.pack`); the sum is written as int32 (float32
    cube for instruments whose archive writes reads as a cube). The reference-pixel border
    is completed at the top and right, every output channel gets its bias offset, the
    exposure keyword holds the time of one coadd, and the main-header cards go to the
    instrument's ``keywords.header_ext``.
    """
    key, n = _coadds(instrument, exposure.kind)
    share = dataclasses.replace(exposure, image=(exposure.image / n).astype(np.float32))
    reads = [pack(instrument, share, binning, rng) for _ in range(n)]
    hdul = reads[0]
    det, kw, sim = instrument.detector, instrument.keywords, instrument.simulation
    channel_rng = np.random.default_rng([exposure.config.seed, 83])
    for index, hdu in enumerate(hdul):
        if hdu.data is None:
            continue
        total = np.sum([r[index].data.astype(np.float64) for r in reads], axis=0)
        if det.reference_rows:
            top = det.reference_rows
            right = parse_section(hdu.header["DATASEC"])[0] - 1   # as wide as the left border
            noise = rng.normal(0.0, np.std(total[:top]), (top, total.shape[1]))
            total = np.vstack([total, np.median(total[:top]) + noise])
            if right:
                noise = rng.normal(0.0, np.std(total[:top]), (total.shape[0], right))
                total = np.hstack([total, np.median(total[:top]) + noise])
        edges = np.linspace(0, total.shape[1], det.output_channels + 1).round().astype(int)
        for lo, hi in itertools.pairwise(edges):
            total[:, lo:hi] += n * CHANNEL_OFFSET_ADU * channel_rng.standard_normal()
        data = np.round(total)
        hdu.data = data[None].astype(np.float32) if sim.data_cube else data.astype(np.int32)
    primary = hdul[0].header
    if kw.exptime_multiply and kw.exptime[0] in primary:
        primary[kw.exptime[0]] = float(exposure.exptime) / n
    if key:
        primary[key] = n
    if kw.header_ext != 0:
        target = hdul[kw.header_ext].header
        for card in primary.cards:
            if card.keyword not in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "") \
                    and card.keyword not in target:
                target[card.keyword] = (card.value, card.comment)
    return hdul
