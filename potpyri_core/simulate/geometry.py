"""The simulator's own detector geometry: where each amplifier's raw pixels come from on the
focal plane, built from the published description in ``[simulation.geometry]`` only.

The reduction places amplifiers with :func:`potpyri_core.stages.rawformat.placements` from
its settings and the raw headers; nothing here reads those settings, so a wrong gap, flip or
section on either side shows up as a disagreement (``tests/optical/test_geometry.py``) and as
per-CCD astrometric offsets in a simulated night.

Conventions: CCD pixel ``(1, 1)`` is the lower-left pixel; a CCD's unbinned lower-left corner
on the focal plane is its centre (reference centre + ``shift``) minus half its shape. The
focal-plane grid is binned; each CCD is put at its corner rounded to a whole binned pixel
(halves up), which is the one simplification: the sub-pixel remainder (at most half a binned
pixel) is not rendered. CCD rotations are rendered by the scene (:func:`ccd_frames`: each
CCD's sources are drawn on its own pixel grid, rotated about the CCD's centre).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits

from potpyri_core.settings import (
    FrameRule,
    GeometryAmplifier,
    InstrumentSettings,
    SimulationGeometry,
)


def true_runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Index ranges ``[start, end)`` of the runs of True in a 1-D boolean array."""
    padded = np.concatenate([[False], np.asarray(flags, bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


@dataclass(frozen=True)
class SimPlacement:
    """One amplifier of a simulated frame: raw layout (binned, 0-based slices) and its
    place on the focal-plane grid, with the header sections it writes."""

    amp: GeometryAmplifier
    raw_shape: tuple[int, int]
    data_x: slice
    data_y: slice
    bias_x: slice | None
    focal_x: slice
    focal_y: slice
    cards: dict[str, str]


_STRUCTURE = ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "")


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5 + 1e-9)


def ccd_corners(geometry: SimulationGeometry) -> list[tuple[float, float]]:
    """Unbinned lower-left corner of every CCD on the focal plane, relative to the corner
    of the bounding box of all CCDs."""
    ref = geometry.ccds[geometry.reference_ccd]
    corners = [(ccd.shift[0] + (ref.shape[0] - ccd.shape[0]) / 2.0,
                ccd.shift[1] + (ref.shape[1] - ccd.shape[1]) / 2.0) for ccd in geometry.ccds]
    x0, y0 = min(c[0] for c in corners), min(c[1] for c in corners)
    return [(x - x0, y - y0) for x, y in corners]


def _section(x1: int, x2: int, y1: int, y2: int) -> str:
    return f"[{x1}:{x2},{y1}:{y2}]"


def amplifier_placements(geometry: SimulationGeometry, header: Any, binning: int) -> list[SimPlacement]:
    """Place every amplifier of ``geometry`` that applies to a frame with ``header``.

    Parameters
    ----------
    geometry : SimulationGeometry
        The published geometry.
    header : Mapping
        Main header of the frame (selects amplifiers by ``when``).
    binning : int
        On-chip binning (same in x and y); must be one of ``geometry.binnings``.

    Returns
    -------
    list of SimPlacement
        Focal-plane slices start at 0 (the grid's lower-left is the first pixel read).
    """
    if binning not in geometry.binnings:
        raise ValueError(f"no published raw layout for binning {binning} (have {sorted(geometry.binnings)})")
    corners = ccd_corners(geometry)
    out = []
    for amp in geometry.amplifiers:
        if amp.when and not FrameRule(when=amp.when).matches(header):
            continue
        layout = amp.layout.get(binning, geometry.binnings[binning])
        ccd = geometry.ccds[amp.ccd]
        (c1, c2), (r1, r2) = amp.columns, amp.rows
        nx, ny = (c2 - c1 + 1) // binning, (r2 - r1 + 1) // binning
        start = layout.overscan if amp.overscan_first else layout.prescan
        data_x = slice(start, start + nx)
        bias_x = None
        if layout.overscan:
            bias_x = slice(0, layout.overscan) if amp.overscan_first else slice(data_x.stop, data_x.stop + layout.overscan)
        width = layout.prescan + nx + layout.overscan
        fx = _round_half_up((corners[amp.ccd][0] + c1 - 1) / binning)
        fy = _round_half_up((corners[amp.ccd][1] + r1 - 1) / binning)
        dx, dy = ccd.detsec_origin
        detx = (dx + c2, dx + c1) if amp.flip_x else (dx + c1, dx + c2)
        dety = (dy + r2, dy + r1) if amp.flip_y else (dy + r1, dy + r2)
        data_y = slice(layout.rows_before, layout.rows_before + ny)
        cards = {"DATASEC": _section(data_x.start + 1, data_x.stop, data_y.start + 1, data_y.stop),
                 "DETSEC": _section(*detx, *dety), "CCDSEC": _section(c1, c2, r1, r2)}
        if bias_x is not None:
            cards["BIASSEC"] = _section(bias_x.start + 1, bias_x.stop, data_y.start + 1, data_y.stop)
        out.append(SimPlacement(amp, (data_y.stop + layout.rows_after, width), data_x, data_y, bias_x,
                                slice(fx, fx + nx), slice(fy, fy + ny),
                                {k: v for k, v in cards.items() if k in geometry.section_cards}))
    if not out:
        raise ValueError("no amplifier of the simulation geometry applies to this frame (check when)")
    x0, y0 = min(p.focal_x.start for p in out), min(p.focal_y.start for p in out)
    return [SimPlacement(p.amp, p.raw_shape, p.data_x, p.data_y, p.bias_x,
                         slice(p.focal_x.start - x0, p.focal_x.stop - x0),
                         slice(p.focal_y.start - y0, p.focal_y.stop - y0), p.cards) for p in out]


def windowed(geometry: SimulationGeometry,
             rows: tuple[int, int] | dict[int, tuple[int, int]]) -> SimulationGeometry:
    """The geometry read out in a window of CCD rows ``rows`` (1-based, unbinned, inclusive),
    as a region-of-interest readout does: one window for every CCD, or one per CCD index
    (a mosaic with two rows of CCDs reads the rows next to the central gap)."""
    amps = []
    for amp in geometry.amplifiers:
        window = rows.get(amp.ccd) if isinstance(rows, dict) else rows
        if window is None:
            raise ValueError(f"no window rows for CCD {amp.ccd} (amplifier {amp.hdu})")
        lo, hi = max(amp.rows[0], window[0]), min(amp.rows[1], window[1])
        if lo > hi:
            raise ValueError(f"window rows {window} miss amplifier {amp.hdu} (rows {amp.rows})")
        amps.append(amp.model_copy(update={"rows": (lo, hi)}))
    return geometry.model_copy(update={"amplifiers": amps})


def focal_plane(places: list[SimPlacement]) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """Grid shape ``(ny, nx)`` and the ``[x0, x1)`` column ranges no amplifier covers."""
    ny = max(p.focal_y.stop for p in places)
    nx = max(p.focal_x.stop for p in places)
    covered = np.zeros(nx, bool)
    for p in places:
        covered[p.focal_x] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[1], covered.astype(int), [1]])))
    return (ny, nx), [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def ccd_regions(places: list[SimPlacement]) -> dict[int, tuple[int, int, int, int]]:
    """Per CCD index: ``(x0, x1, y0, y1)`` (0-based, end exclusive) on the focal-plane grid."""
    out: dict[int, list[int]] = {}
    for p in places:
        box = out.setdefault(p.amp.ccd, [p.focal_x.start, p.focal_x.stop, p.focal_y.start, p.focal_y.stop])
        box[0], box[1] = min(box[0], p.focal_x.start), max(box[1], p.focal_x.stop)
        box[2], box[3] = min(box[2], p.focal_y.start), max(box[3], p.focal_y.stop)
    return {k: (v[0], v[1], v[2], v[3]) for k, v in sorted(out.items())}


def ccd_frames(geometry: SimulationGeometry, places: list[SimPlacement],
               binning: int) -> list[tuple[int, int, int, int, float, float, float]]:
    """Per CCD read: its box on the focal-plane grid, its physical centre and rotation, for
    :attr:`potpyri_core.simulate.scene.SceneConfig.ccd_frames`; empty when no CCD is rotated.

    The centre is the whole CCD's (``shape / 2``), also when a window reads part of it.
    """
    if not any(ccd.rotation_deg for ccd in geometry.ccds):
        return []
    out = []
    for index, (x0, x1, y0, y1) in ccd_regions(places).items():
        ccd = geometry.ccds[index]
        first = min((p for p in places if p.amp.ccd == index), key=lambda p: (p.amp.columns[0], p.amp.rows[0]))
        (c1, _), (r1, _) = first.amp.columns, first.amp.rows
        cx = first.focal_x.start + (ccd.shape[0] / 2.0 - (c1 - 1)) / binning - 0.5
        cy = first.focal_y.start + (ccd.shape[1] / 2.0 - (r1 - 1)) / binning - 0.5
        out.append((x0, x1, y0, y1, cx, cy, ccd.rotation_deg))
    return out


def pack_amplifiers(instrument: InstrumentSettings, primary: fits.Header, exposure: Any, binning: int,
                    rng: np.random.Generator) -> list[fits.ImageHDU | fits.PrimaryHDU]:
    """Cut a simulated exposure into raw amplifier extensions as the published geometry says.

    Parameters
    ----------
    instrument : InstrumentSettings
        Settings with ``simulation.geometry`` (only the simulation section is read, and the
        keyword names the raw format uses for binning, gain and read noise).
    primary : astropy.io.fits.Header
        The frame's main header (already filled in).
    exposure : potpyri_core.simulate.scene.Exposure
        Electrons on the focal-plane grid of :func:`amplifier_placements`.
    binning : int
        On-chip binning.
    rng : numpy.random.Generator
        For read noise.

    Returns
    -------
    list of HDU
        The primary HDU (holding the pixels when an amplifier has ``hdu = 0``) and one
        uint16 extension per other amplifier, in geometry order.
    """
    sim, kw = instrument.simulation, instrument.keywords
    places = amplifier_placements(sim.geometry, primary, binning)
    hdus: list[fits.ImageHDU | fits.PrimaryHDU] = [fits.PrimaryHDU(header=primary)]
    for index, place in enumerate(places):
        amp = place.amp
        ny, nx = place.raw_shape
        raw = np.full((ny, nx), amp.bias_adu, np.float32) + np.linspace(0.0, 3.0, ny, dtype=np.float32)[:, None]
        electrons = exposure.image[place.focal_y, place.focal_x]
        if amp.flip_x:
            electrons = electrons[:, ::-1]
        if amp.flip_y:
            electrons = electrons[::-1]
        raw[place.data_y, place.data_x] += electrons / amp.gain
        raw += rng.normal(0.0, amp.readnoise / amp.gain, raw.shape).astype(np.float32)
        raw = np.clip(np.round(raw), 0, 65535).astype(np.uint16)
        h = fits.Header()
        h.update(dict(sim.extension))
        h.update(dict(amp.cards))
        if amp.hdu != 0 and "EXTNAME" not in h:
            h["EXTNAME"] = "SCI"
        if h.get("EXTNAME") == "SCI" and "EXTVER" not in amp.cards:
            h["EXTVER"] = index + 1
        h[kw.binning[0] if kw.binning else "CCDSUM"] = sim.geometry.binning_format.format(b=binning)
        if kw.gain:
            h[kw.gain] = amp.gain
        if kw.readnoise:
            h[kw.readnoise] = amp.readnoise
        h.update(place.cards)
        if kw.header_ext != 0:
            # archives whose main header is an extension write the frame's cards in every one
            h.update({card.keyword: (card.value, card.comment) for card in primary.cards
                      if card.keyword not in h and card.keyword not in _STRUCTURE})
        if exposure.header_wcs is not None and not (amp.flip_x or amp.flip_y):
            wcs = exposure.header_wcs.deepcopy()
            wcs.wcs.crpix[0] -= place.focal_x.start - place.data_x.start
            wcs.wcs.crpix[1] -= place.focal_y.start - place.data_y.start
            h.update(wcs.to_header())
        if amp.hdu == 0:
            merged = hdus[0].header.copy()
            merged.update(h)
            hdus[0] = fits.PrimaryHDU(raw, header=merged)
        else:
            hdus.append(fits.ImageHDU(raw, header=h))
    return hdus
