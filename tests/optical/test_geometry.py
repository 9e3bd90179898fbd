"""The simulator's published geometry against the reduction's settings (issue 13, item 1).

The simulator packs raw frames from ``[simulation.geometry]`` only; the reduction assembles
them with ``placements()`` from ``[detector]`` and the raw section keywords. These tests say
which number disagrees (amplifier, CCD, binning, and which slice), and show by assembling a
packed frame that every raw pixel lands where the published geometry puts it.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits

from potpyri_core.frames import NO_AMP
from potpyri_core.plugins import PluginManager
from potpyri_core.settings import InstrumentSettings
from potpyri_core.simulate.geometry import amplifier_placements
from potpyri_core.stages.rawformat import pack, placements

PM = PluginManager()
WITH_GEOMETRY = sorted(name for name, entry in PM.instruments().items()
                       if entry.settings.simulation is not None and entry.settings.simulation.geometry is not None)
CASES = [(name, b) for name in WITH_GEOMETRY for b in sorted(PM.instrument(name).simulation.geometry.binnings)]


def _span(s: slice | None) -> tuple[int, int] | None:
    return None if s is None else (s.start, s.stop)


def disagreements(instrument: InstrumentSettings, binning: int) -> list[str]:
    """Every number in which the reduction's placement differs from the published geometry."""
    sim = instrument.simulation
    header = dict(sim.primary)
    published = amplifier_placements(sim.geometry, header, binning)
    ext_headers = {p.amp.hdu: p.cards for p in published}
    reduction = {p.amp.hdu: p for p in placements(instrument, header, ext_headers, (binning, binning))}
    out = []
    for p in published:
        where = f"{instrument.name} {binning}x{binning} amplifier hdu {p.amp.hdu} (CCD {p.amp.ccd})"
        r = reduction.get(p.amp.hdu)
        if r is None:
            out.append(f"{where}: not placed by the reduction")
            continue
        pairs = {"mosaic x": (_span(r.mosaic_x), _span(p.focal_x)), "mosaic y": (_span(r.mosaic_y), _span(p.focal_y)),
                 "raw data columns": (_span(r.data_x), _span(p.data_x)), "raw data rows": (_span(r.data_y), _span(p.data_y)),
                 "raw overscan columns": (_span(r.bias_x), _span(p.bias_x)),
                 "flip x": (r.flip_x, p.amp.flip_x), "flip y": (r.flip_y, p.amp.flip_y),
                 "gain": (r.amp.gain, p.amp.gain), "read noise": (r.amp.readnoise, p.amp.readnoise)}
        out += [f"{where}: {what} is {red} in the settings, {pub} in the published geometry"
                for what, (red, pub) in pairs.items() if red != pub]
    return out


@pytest.mark.parametrize(("name", "binning"), CASES)
def test_settings_place_every_amplifier_where_the_published_geometry_does(name, binning):
    assert disagreements(PM.instrument(name), binning) == []


def test_the_optical_instruments_have_a_published_geometry():
    assert {"DEIMOS", "GMOS-N", "GMOS-S", "LRIS"} <= set(WITH_GEOMETRY)


@pytest.mark.parametrize("name", ["DEIMOS", "GMOS-S", "LRIS"])
def test_a_five_pixel_gap_error_is_named(name):
    settings = PM.instrument(name)
    offsets = list(settings.detector.ccd_offsets)
    last = len(offsets) - 1
    offsets[last] = (offsets[last][0] + 5 * 2, offsets[last][1])
    wrong = settings.model_copy(update={"detector": settings.detector.model_copy(update={"ccd_offsets": offsets})})
    found = disagreements(wrong, 2)
    assert found and all(f"(CCD {last})" in line and "mosaic x" in line for line in found)


def _assembled_coordinates(name: str, binning: int, tmp_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pack images of 10 * focal-plane x and 10 * y, assemble them with the reduction."""
    settings = PM.instrument(name)
    sim = settings.simulation
    shape = (max(p.focal_y.stop for p in amplifier_placements(sim.geometry, dict(sim.primary), binning)),
             max(p.focal_x.stop for p in amplifier_placements(sim.geometry, dict(sim.primary), binning)))
    yy, xx = np.indices(shape, dtype=np.float32)
    hooks = PM.for_instrument(name)
    out = []
    for index, image in enumerate((10.0 * xx, 10.0 * yy)):
        exposure = SimpleNamespace(kind="bias", index=index, object_name="bias", exptime=0.0, band="r",
                                   mjd=61000.0, header_wcs=None, image=image)
        path = tmp_path / f"{name}_{index}.fits"
        pack(settings, exposure, binning, np.random.default_rng(index)).writeto(path)
        with fits.open(path) as hdul:
            frame = hooks.potpyri_assemble(instrument=settings, hdul=hdul, path=path)
        out.append(frame)
    covered = frame.amp_map != NO_AMP
    return out[0].data, out[1].data, covered


@pytest.mark.parametrize(("name", "binning"), [c for c in CASES if c[1] >= 2])
def test_assembled_pixels_come_from_their_published_focal_plane_position(name, binning, tmp_path):
    x_image, y_image, covered = _assembled_coordinates(name, binning, tmp_path)
    yy, xx = np.indices(x_image.shape)
    # read noise ~4 e- against 10 e- per pixel step: a wrong column or row is off by >= 10 e-
    assert np.median(np.abs(x_image - 10 * xx)[covered]) < 3.0
    assert np.median(np.abs(y_image - 10 * yy)[covered]) < 3.0
    assert np.mean(np.abs(x_image - 10 * xx)[covered] > 5 * 10) < 1e-4
    assert np.mean(np.abs(y_image - 10 * yy)[covered] > 5 * 10) < 1e-4
