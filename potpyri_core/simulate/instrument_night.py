"""Simulate a raw night of an installed instrument: the scene geometry comes from the
instrument's settings and the raw format from its ``potpyri_pack_raw`` hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from astropy.time import Time

from potpyri_core.plugins import PluginManager
from potpyri_core.settings import InstrumentSettings
from potpyri_core.simulate.night import simulate_night
from potpyri_core.simulate.scene import SceneConfig
from potpyri_core.stages.rawformat import mosaic_shape, placements

# Typical zero points (mag for 1 e-/s) and dark-sky brightness of an 8-m class telescope.
BAND_ZEROPOINT = {"u": 26.8, "g": 28.3, "r": 28.2, "i": 27.9, "z": 27.3, "J": 27.0, "H": 27.1, "K": 26.6}
BAND_SKY = {"u": 22.4, "g": 22.0, "r": 21.0, "i": 20.2, "z": 19.0, "J": 16.5, "H": 14.4, "K": 13.0}


def focal_plane(instrument: InstrumentSettings, binning: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """Mosaic shape ``(ny, nx)`` and the column ranges that are chip gaps, at ``binning``."""
    header = dict(instrument.simulation.primary) if instrument.simulation else {}
    places = placements(instrument, header, {}, (binning, binning))
    ny, nx = mosaic_shape(places)
    covered = np.zeros(nx, bool)
    for p in places:
        covered[p.mosaic_x] = True
    gaps, start = [], None
    for x, c in enumerate(covered):
        if not c and start is None:
            start = x
        if c and start is not None:
            gaps.append((start, x))
            start = None
    if start is not None:
        gaps.append((start, nx))
    return (ny, nx), gaps


def scene_config(instrument: InstrumentSettings, binning: int = 2, **overrides: Any) -> SceneConfig:
    """A scene for ``instrument``: its geometry, pixel scale and saturation, plus overrides."""
    shape, gaps = focal_plane(instrument, binning)
    band = overrides.get("band", "r")
    min_gain = min(a.gain for a in instrument.detector.amplifiers)
    bias = instrument.simulation.bias_level_adu if instrument.simulation else 0.0
    values: dict[str, Any] = {
        "shape": shape, "gap_columns": gaps, "pixel_scale": instrument.pixel_scale * binning, "ra": 150.1, "dec": 2.2,
        "zeropoint": BAND_ZEROPOINT.get(band, 28.0), "sky_mag_per_arcsec2": BAND_SKY.get(band, 21.0),
        "saturation_e": (instrument.detector.saturation_adu - 1.3 * bias) * min_gain, "nir": instrument.band == "nir",
        "pixel_size_um": 15.0 * binning,
        "read_noise_e": float(np.median([a.readnoise for a in instrument.detector.amplifiers])),
    }
    values.update(overrides)
    return SceneConfig(**values)


def simulate_instrument_night(
    pm: PluginManager, instrument: InstrumentSettings, outdir: Path, seed: int = 1, binning: int = 2,
    n_science: int = 5, n_flats: int = 3, n_bias: int = 3, band: str = "r", exptime: float = 120.0,
    fwhm: float = 0.8, scene_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a simulated raw night of ``instrument`` into ``outdir``.

    Parameters
    ----------
    pm : PluginManager
        Provides the instrument's ``potpyri_pack_raw`` (its own plugins and the core default).
    instrument : InstrumentSettings
        Must have a ``simulation`` section.
    outdir : Path
        Output folder (raw files, ``truth/``, reference catalogs).
    scene_overrides : dict, optional
        Other :class:`~potpyri_core.simulate.scene.SceneConfig` fields, e.g.
        ``star_density_per_arcmin2`` for a sparse high-latitude field or ``header_offset_arcsec``.

    Returns
    -------
    dict
        Paths of what was written.
    """
    if instrument.simulation is None:
        raise ValueError(f"{instrument.name} has no simulation format: it cannot be simulated yet")
    cfg = scene_config(instrument, binning, seed=seed, n_science=n_science, n_flats=n_flats, n_bias=n_bias,
                       band=band, exptime=exptime, fwhm_arcsec=fwhm, **(scene_overrides or {}))
    sim = instrument.simulation
    counters: dict[str, int] = {}

    def name_for(exposure: Any) -> str:
        counters[exposure.kind] = counters.get(exposure.kind, 0) + 1
        number = sum(counters.values())
        date = Time(exposure.mjd, format="mjd").strftime("%Y%m%d")
        return sim.file_name.format(kind=exposure.kind, number=number, date=date)

    hooks = pm.for_instrument(instrument.name)

    def pack(exposure: Any):
        return hooks.potpyri_pack_raw(instrument=instrument, exposure=exposure, binning=binning)

    return simulate_night(cfg, Path(outdir), pack, name_for)
