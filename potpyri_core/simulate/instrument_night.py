"""Simulate a raw night of an installed instrument: the scene geometry comes from the
instrument's settings and the raw format from its ``potpyri_pack_raw`` hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from astropy.time import Time

from potpyri_core.plugins import PluginManager
from potpyri_core.settings import InstrumentSettings
from potpyri_core.simulate import geometry
from potpyri_core.simulate.fringes import FRINGE_AMPLITUDE
from potpyri_core.simulate.night import simulate_night
from potpyri_core.simulate.rawwrite import with_compression
from potpyri_core.simulate.scene import SceneConfig
from potpyri_core.stages.rawformat import mosaic_shape, placements

# Typical zero points (mag for 1 e-/s) and dark-sky brightness of an 8-m class telescope.
BAND_ZEROPOINT = {"u": 26.8, "g": 28.3, "r": 28.2, "i": 27.9, "z": 27.3, "J": 27.0, "H": 27.1, "K": 26.6}
NIR_SCENE = {"sky_variation": 0.04, "sky_structure": 0.01, "hot_pixel_fraction": 2e-4, "dark_e_per_s": 0.05,
             "mag_bright": 12.0, "mag_faint": 20.0, "count_slope": 0.2, "star_density_per_arcmin2": 100.0}
"""Near-infrared nights: the sky level changes by ~4% between frames with a gradient and a
pattern fixed on the detector; hot pixels; bright stars and flatter counts so a cut-down
detector has enough 2MASS stars for the zero point (~140 on 3'). Stars stop at 20 AB, above
the 5-sigma limit of a small NIR night (~21 AB in 9 x 30 s Ks on an 8-m): the truth-based
limit counts sky and read noise only, so the field must not be crowded with undetected stars
near the limit."""
BAND_SKY = {"u": 22.4, "g": 22.0, "r": 21.0, "i": 20.2, "z": 19.0, "J": 16.4, "H": 15.8, "K": 14.9}
"""Sky (AB mag/arcsec^2); J/H/K: the Mauna Kea / Cerro Pachon near-IR sky, about 15.5, 14.4 and
13.0 Vega, plus the 2MASS AB offsets."""


def focal_plane(instrument: InstrumentSettings, binning: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """Mosaic shape ``(ny, nx)`` and the column ranges that are chip gaps, at ``binning``:
    from the published geometry (``simulation.geometry``) when the settings have one."""
    header = dict(instrument.simulation.primary) if instrument.simulation else {}
    if instrument.simulation is not None and instrument.simulation.geometry is not None:
        return geometry.focal_plane(geometry.amplifier_placements(instrument.simulation.geometry, header, binning))
    places = placements(instrument, header, {}, (binning, binning))
    ny, nx = mosaic_shape(places)
    covered = np.zeros(nx, bool)
    for p in places:
        covered[p.mosaic_x] = True
    return (ny, nx), geometry.true_runs(~covered)


def scene_config(instrument: InstrumentSettings, binning: int = 2, **overrides: Any) -> SceneConfig:
    """A scene for ``instrument``: its geometry, pixel scale and saturation, fringes in the
    bands its settings mark (``fringe_bands``), plus overrides."""
    shape, gaps = focal_plane(instrument, binning)
    band = overrides.get("band", "r")
    sim = instrument.simulation
    frames = []
    if sim is not None and sim.geometry is not None:
        places = geometry.amplifier_placements(sim.geometry, dict(sim.primary), binning)
        frames = geometry.ccd_frames(sim.geometry, places, binning)
    amps = sim.geometry.amplifiers if sim is not None and sim.geometry is not None else instrument.detector.amplifiers
    min_gain = min(a.gain for a in amps)
    bias = max(getattr(a, "bias_adu", sim.bias_level_adu if sim else 0.0) for a in amps)
    values: dict[str, Any] = {
        "shape": shape, "gap_columns": gaps, "pixel_scale": instrument.pixel_scale * binning, "ra": 150.1, "dec": 2.2,
        "zeropoint": BAND_ZEROPOINT.get(band, 28.0), "sky_mag_per_arcsec2": BAND_SKY.get(band, 21.0),
        "saturation_e": (instrument.detector.saturation_adu - 1.3 * bias) * min_gain, "nir": instrument.band == "nir",
        "pixel_size_um": 15.0 * binning,
        "read_noise_e": float(np.median([a.readnoise for a in amps])), "ccd_frames": frames,
        "fringe_amplitude": FRINGE_AMPLITUDE.get(band, 0.0) if band in instrument.fringe_bands else 0.0,
    }
    if instrument.band == "nir":
        values.update(NIR_SCENE)
    values.update(overrides)
    return SceneConfig(**values)


def simulate_instrument_night(
    pm: PluginManager, instrument: InstrumentSettings, outdir: Path, seed: int = 1, binning: int | None = None,
    n_science: int = 5, n_flats: int = 3, n_bias: int = 3, band: str = "r", exptime: float = 120.0,
    fwhm: float = 0.8, compression: str | None = None,
    window: tuple[int, int] | dict[int, tuple[int, int]] | None = None,
    dec: float = 2.2, n_darks: int = 3, scene_overrides: dict[str, Any] | None = None,
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
    compression : str, optional
        ``"none"``, ``"gz"`` or ``"bz2"``; None writes the archive's compression (the
        suffix of the instrument's ``simulation.file_name``).
    dec : float
        Declination of the field (deg).
    window : tuple of int or dict, optional
        Read only these CCD rows (1-based, unbinned), as a region-of-interest readout does,
        or per CCD index its rows; needs ``simulation.geometry``.
    binning : int, optional
        On-chip binning; default 2 for optical, 1 for NIR arrays (which do not bin).
    n_flats, n_bias, n_darks : int
        Calibration frames, for the kinds the instrument needs (``calibrations.needed``);
        no flat frames when its flats are (or may be) sky flats (``flat_source = "sky"``,
        ``sky_flat_fallback``).
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
    binning = binning or (1 if instrument.band == "nir" else 2)
    needed, cal = set(instrument.calibrations.needed), instrument.calibrations
    counts = {"n_bias": n_bias if "bias" in needed else 0, "n_darks": n_darks if "dark" in needed else 0,
              "n_flats": n_flats if "flat" in needed and cal.flat_source != "sky" and not cal.sky_flat_fallback else 0}
    if window is not None:
        if instrument.simulation.geometry is None:
            raise ValueError(f"{instrument.name}: a readout window needs simulation.geometry")
        sim = instrument.simulation.model_copy(
            update={"geometry": geometry.windowed(instrument.simulation.geometry, window)})
        instrument = instrument.model_copy(update={"simulation": sim})
    cfg = scene_config(instrument, binning, seed=seed, n_science=n_science, band=band, exptime=exptime,
                       fwhm_arcsec=fwhm, dec=dec, **counts, **(scene_overrides or {}))
    sim = instrument.simulation
    counters: dict[str, int] = {}

    def name_for(exposure: Any) -> str:
        counters[exposure.kind] = counters.get(exposure.kind, 0) + 1
        number = sum(counters.values())
        date = Time(exposure.mjd, format="mjd").strftime("%Y%m%d")
        return with_compression(sim.file_name.format(kind=exposure.kind, number=number, date=date), compression)

    hooks = pm.for_instrument(instrument.name)

    def pack(exposure: Any):
        return hooks.potpyri_pack_raw(instrument=instrument, exposure=exposure, binning=binning)

    extra = {}
    if instrument.simulation.geometry is not None:
        places = geometry.amplifier_placements(instrument.simulation.geometry, dict(sim.primary), binning)
        extra["ccd_regions"] = {str(k): v for k, v in geometry.ccd_regions(places).items()}
    return simulate_night(cfg, Path(outdir), pack, name_for, extra_truth=extra)
