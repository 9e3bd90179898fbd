"""Astrometry per CCD: each CCD of a solved mosaic frame gets its own pixel map before the
frame's WCS.

A mosaic assembles its CCDs on an axis-aligned grid, but real CCDs sit rotated (DEIMOS:
up to 0.136 deg, 2.7 binned pixels at the far rows of a 4096-row CCD) and shifted by
fractions of a pixel. One WCS for the assembled frame then cannot fit every CCD: its
distortion terms bend to absorb the rotations, wrong everywhere by a little. With
``astrometry_per_ccd`` in the instrument settings, after the frame's solution (and the
frame-to-frame alignment) the detections are matched to the reference catalog put on the
frame by that solution, and one smooth correction of the whole frame ``G`` (a polynomial,
what the frame WCS's distortion got wrong) and a similarity per CCD (shift, rotation, scale
about the CCD's centre) are fitted together with clipping::

    p_frame = p + G(p) + t_k + B_k (p - c_k)      (p on CCD k)

so that the sky position of a mosaic pixel ``p`` is ``frame_wcs(p_frame)``: the frame's WCS
is the start, and each CCD refines it. The maps are header cards (``CWn...`` per CCD ``n``,
``CWG...`` for ``G``) of the workspace frame; the resample stage maps every output pixel
through the inverse of the map of the CCD it falls on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from potpyri_core.frames import NO_AMP, Frame
from potpyri_core.settings import InstrumentSettings

if TYPE_CHECKING:
    from potpyri_core.stages.astrometry import AstrometryParams

CARD_PREFIX = "CW"
"""Prefix of the per-CCD map cards (``CWNCCD``, ``CW0X0`` ... ``CW7NST``, ``CWG...``)."""
_CARD = re.compile(r"^CW(NCCD|G.*|\d.*)$")


class CCDFitError(RuntimeError):
    """Too few matched stars on a CCD for its map."""


@dataclass(frozen=True)
class CCDMap:
    """The pixel map of one CCD of a mosaic frame.

    Attributes
    ----------
    ccd : int
        CCD index of the instrument's amplifiers.
    box : tuple of int
        ``(x0, x1, y0, y1)``: the CCD's pixels on the mosaic (0-based, end exclusive).
    centre : tuple of float
        Centre ``c`` of the map (0-based pixels; the box centre).
    shift : tuple of float
        ``t`` (pixels).
    matrix : tuple of tuple of float
        ``M`` (2 x 2, rows).
    n_stars : int
        Stars the map was fitted to (0: identity, not fitted).
    rms : float
        RMS residual of the fit (pixels).
    """

    ccd: int
    box: tuple[int, int, int, int]
    centre: tuple[float, float]
    shift: tuple[float, float] = (0.0, 0.0)
    matrix: tuple[tuple[float, float], tuple[float, float]] = ((1.0, 0.0), (0.0, 1.0))
    n_stars: int = 0
    rms: float = 0.0

    @property
    def rotation_deg(self) -> float:
        """Rotation of the map (deg, counter-clockwise)."""
        return float(np.degrees(np.arctan2(self.matrix[1][0], self.matrix[0][0])))

    def forward(self, xy: np.ndarray) -> np.ndarray:
        """CCD pixels ``(n, 2)`` to frame-WCS pixels."""
        c = np.asarray(self.centre)
        return c + np.asarray(self.shift) + (np.asarray(xy, float) - c) @ np.asarray(self.matrix).T

    def inverse(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame-WCS pixels (arrays of any shape) to CCD pixels."""
        inv = np.linalg.inv(np.asarray(self.matrix, float))
        cx, cy = self.centre
        dx, dy = x - cx - self.shift[0], y - cy - self.shift[1]
        return cx + inv[0, 0] * dx + inv[0, 1] * dy, cy + inv[1, 0] * dx + inv[1, 1] * dy

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """True where CCD pixel coordinates lie on this CCD (pixel centres at integers)."""
        x0, x1, y0, y1 = self.box
        return (x >= x0 - 0.5) & (x < x1 - 0.5) & (y >= y0 - 0.5) & (y < y1 - 0.5)


def ccd_boxes(frame: Frame, instrument: InstrumentSettings) -> dict[int, tuple[int, int, int, int]]:
    """Mosaic box ``(x0, x1, y0, y1)`` of every CCD of an assembled frame, from its
    amplifier map and the settings' amplifier-to-CCD assignment.

    Raises
    ------
    ValueError
        When the frame has no amplifier map.
    """
    if frame.amp_map is None or not frame.amps:
        raise ValueError(f"{frame.name}: no amplifier map (AMPMAP): the CCDs cannot be found")
    ccd_of = {a.name: a.ccd for a in instrument.detector.amplifiers}
    boxes: dict[int, tuple[int, int, int, int]] = {}
    for index, amp in enumerate(frame.amps):
        if index == NO_AMP:
            continue
        ys, xs = np.nonzero(frame.amp_map == index)
        if xs.size == 0:
            continue
        ccd = ccd_of.get(amp.name, 0)
        box = (int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1)
        if ccd in boxes:
            old = boxes[ccd]
            box = (min(old[0], box[0]), max(old[1], box[1]), min(old[2], box[2]), max(old[3], box[3]))
        boxes[ccd] = box
    return dict(sorted(boxes.items()))


@dataclass(frozen=True)
class Smooth:
    """The smooth correction ``G`` of a whole frame: a polynomial per axis of degrees
    1..``order`` in ``(p - origin) / norm`` (terms ``u**i * v**j``, ``i`` outer)."""

    origin: tuple[float, float]
    norm: float
    order: int
    coef_x: tuple[float, ...]
    coef_y: tuple[float, ...]

    def terms(self, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        """The monomials at pixels ``(x, y)``."""
        u, v = (np.asarray(x, float) - self.origin[0]) / self.norm, (np.asarray(y, float) - self.origin[1]) / self.norm
        return monomials(u, v, self.order)

    def shift(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``G`` at pixels ``(x, y)``."""
        t = self.terms(x, y)
        return sum(c * m for c, m in zip(self.coef_x, t, strict=True)), sum(
            c * m for c, m in zip(self.coef_y, t, strict=True))


def monomials(u: np.ndarray, v: np.ndarray, order: int) -> list[np.ndarray]:
    """``u**i * v**j`` for ``1 <= i + j <= order``, ``i`` outer."""
    return [u**i * v**j for i in range(order + 1) for j in range(order + 1 - i) if i + j >= 1]


@dataclass(frozen=True)
class FrameMaps:
    """The CCD maps of one frame and the frame's smooth correction."""

    ccds: list[CCDMap]
    smooth: Smooth | None = None

    def to_frame(self, xy: np.ndarray) -> np.ndarray:
        """Mosaic pixels ``(n, 2)`` to frame-WCS pixels (off every CCD: ``G`` only)."""
        xy = np.asarray(xy, float)
        out = xy.copy()
        for m in self.ccds:
            on = m.contains(xy[:, 0], xy[:, 1])
            out[on] = m.forward(xy[on])
        if self.smooth is not None:
            gx, gy = self.smooth.shift(xy[:, 0], xy[:, 1])
            out += np.column_stack([gx, gy])
        return out

    def to_mosaic(self, x: np.ndarray, y: np.ndarray, passes: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """Frame-WCS pixels (arrays of any shape) to the mosaic pixels that see them, CCD by
        CCD (``G`` inverted by fixed-point passes; it changes by far less than 1e-3 px per
        px). Coordinates that no CCD's inverse puts on that CCD are returned unchanged."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        out_x, out_y = x.copy(), y.copy()
        claimed = np.zeros(x.shape, bool)
        for m in self.ccds:
            px, py = m.inverse(x, y)
            for _ in range(passes if self.smooth is not None else 0):
                gx, gy = self.smooth.shift(px, py)  # type: ignore[union-attr]
                px, py = m.inverse(x - gx, y - gy)
            on = m.contains(px, py) & ~claimed
            out_x[on], out_y[on] = px[on], py[on]
            claimed |= on
        return out_x, out_y


def _design(xy: np.ndarray, ccd_index: np.ndarray, centres: np.ndarray, smooth: Smooth) -> np.ndarray:
    """Design matrix of the joint model (x rows, then y rows): ``G``'s terms per axis, then a
    shift and scaled rotation ``(tx, ty, a, b)`` per CCD."""
    n, n_ccd = len(xy), len(centres)
    terms = smooth.terms(xy[:, 0], xy[:, 1])
    zeros = [np.zeros(n)] * len(terms)
    glob = np.vstack([np.column_stack([*terms, *zeros]), np.column_stack([*zeros, *terms])])
    local = np.zeros((2 * n, 4 * n_ccd))
    d = xy - centres[ccd_index]
    rows = np.arange(n)
    local[rows, 4 * ccd_index] = 1.0
    local[rows, 4 * ccd_index + 2] = d[:, 0]
    local[rows, 4 * ccd_index + 3] = -d[:, 1]
    local[n + rows, 4 * ccd_index + 1] = 1.0
    local[n + rows, 4 * ccd_index + 2] = d[:, 1]
    local[n + rows, 4 * ccd_index + 3] = d[:, 0]
    return np.hstack([glob, local])


def joint_fit(xy: np.ndarray, ccd_index: np.ndarray, boxes: dict[int, tuple[int, int, int, int]],
              ref_xy: np.ndarray, radius_px: float, min_stars: int, clip_sigma: float = 3.0, order: int = 3,
              iterations: int = 6, min_radius_px: float = 0.5) -> FrameMaps:
    """Fit the smooth correction of the whole frame and a similarity per CCD together.

    Fitted together, a CCD's rotation cannot be absorbed by the polynomial (fitting them in
    turn converges slowly: 0.055" -> 0.037" in 8 alternations on a DEIMOS frame, 0.009"
    jointly).

    Parameters
    ----------
    xy : ndarray
        Detections (``(n, 2)``, mosaic pixels) on the CCDs.
    ccd_index : ndarray
        Position in ``boxes`` of the CCD each detection lies on.
    boxes : dict
        CCD index -> its box on the mosaic.
    ref_xy : ndarray
        Reference stars put on the frame by the frame's WCS.
    radius_px : float
        First pairing radius; tightened to ``max(3 RMS, min_radius_px)``.
    min_stars : int
        Fewest pairs for a CCD's similarity (a CCD with fewer keeps the identity, with
        ``n_stars = 0``) and for the fit.
    clip_sigma, order, iterations : float, int, int
        Clipping (robust sigmas), degree of ``G``, match-and-fit passes.

    Raises
    ------
    CCDFitError
        With fewer than ``min_stars`` pairs in all.
    """
    from scipy.spatial import cKDTree

    keys = list(boxes)
    box_list = list(boxes.values())
    centres = np.array([[(b[0] + b[1] - 1) / 2.0, (b[2] + b[3] - 1) / 2.0] for b in box_list])
    x0, x1 = min(b[0] for b in box_list), max(b[1] for b in box_list)
    y0, y1 = min(b[2] for b in box_list), max(b[3] for b in box_list)
    n_terms = len(monomials(np.zeros(1), np.zeros(1), order))
    smooth = Smooth(((x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0), max(x1 - x0, y1 - y0) / 2.0, order,
                    (0.0,) * n_terms, (0.0,) * n_terms)
    full = _design(xy, ccd_index, centres, smooth)
    n = len(xy)
    tree = cKDTree(ref_xy)
    coef = np.zeros(full.shape[1])
    radius = radius_px
    keep = np.zeros(n, bool)
    idx = np.zeros(n, int)

    def solve(use: np.ndarray) -> np.ndarray:
        rows = np.concatenate([np.flatnonzero(use), n + np.flatnonzero(use)])
        target = (ref_xy[idx[use]] - xy[use]).T.ravel()
        return np.linalg.lstsq(full[rows], target, rcond=1e-10)[0]

    def residual(use: np.ndarray) -> np.ndarray:
        step = full @ coef
        return np.hypot(*(xy[use] + np.column_stack([step[:n], step[n:]])[use] - ref_xy[idx[use]]).T)

    for _ in range(iterations):
        step = full @ coef
        dist, idx = tree.query(xy + np.column_stack([step[:n], step[n:]]), distance_upper_bound=radius)
        pair = np.isfinite(dist)
        idx = np.where(pair, idx, 0)
        if pair.sum() < min_stars:
            raise CCDFitError(f"only {int(pair.sum())} stars matched on the CCDs (need {min_stars})")
        coef = solve(pair)
        r = residual(pair)
        sigma = np.median(r) / 1.1774  # per axis: the median of a 2-D Gaussian radius is 1.1774 sigma
        keep = np.zeros(n, bool)
        keep[np.flatnonzero(pair)[r <= max(clip_sigma * sigma, 1e-6)]] = True
        coef = solve(keep)
        radius = max(3.0 * float(np.sqrt(np.mean(residual(keep) ** 2))), min_radius_px)
    final = np.zeros(n)
    final[keep] = residual(keep)
    smooth = Smooth(smooth.origin, smooth.norm, order, tuple(float(c) for c in coef[:n_terms]),
                    tuple(float(c) for c in coef[n_terms:2 * n_terms]))
    maps = []
    for k, (key, box) in enumerate(zip(keys, box_list, strict=True)):
        on = keep & (ccd_index == k)
        tx, ty, a, b = (float(c) for c in coef[2 * n_terms + 4 * k: 2 * n_terms + 4 * k + 4])
        centre = (float(centres[k, 0]), float(centres[k, 1]))
        if on.sum() < min_stars:
            maps.append(CCDMap(key, box, centre))
        else:
            maps.append(CCDMap(key, box, centre, (tx, ty), ((1.0 + a, -b), (b, 1.0 + a)), int(on.sum()),
                               float(np.sqrt(np.mean(final[on] ** 2)))))
    return FrameMaps(maps, smooth)


def solve_ccds(frame: Frame, wcs: WCS, stars: Table, ra: np.ndarray, dec: np.ndarray,
               instrument: InstrumentSettings, params: AstrometryParams,
               margin_px: float = 5.0) -> tuple[FrameMaps, list[str]]:
    """The CCD maps and smooth correction of a solved frame (:func:`joint_fit`).

    Parameters
    ----------
    frame : Frame
        The workspace frame (its amplifier map gives the CCDs).
    wcs : astropy.wcs.WCS
        The frame's solved WCS.
    stars : astropy.table.Table
        Detections (``x``, ``y``; 0-based).
    ra, dec : ndarray
        Reference catalog at the frame's epoch (deg).
    instrument : InstrumentSettings
        Amplifier-to-CCD assignment.
    params : AstrometryParams
        First pairing radius, fewest stars, clipping.
    margin_px : float
        Detections this close to a CCD's edge are left out (cut stars).

    Returns
    -------
    maps : FrameMaps
    notes : list of str
        One per CCD left on the frame's WCS (too few stars).
    """
    xy = np.column_stack([np.asarray(stars["x"], float), np.asarray(stars["y"], float)])
    scale = float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix)))) * 3600.0
    boxes = ccd_boxes(frame, instrument)
    ccd_index = np.full(len(xy), -1)
    for k, (x0, x1, y0, y1) in enumerate(boxes.values()):
        on = ((xy[:, 0] >= x0 + margin_px) & (xy[:, 0] <= x1 - 1 - margin_px)
              & (xy[:, 1] >= y0 + margin_px) & (xy[:, 1] <= y1 - 1 - margin_px))
        ccd_index[on] = k
    with np.errstate(invalid="ignore"):
        rx, ry = wcs.all_world2pix(ra, dec, 0, quiet=True)
    ref = np.column_stack([rx, ry])
    ref = ref[np.all(np.isfinite(ref), axis=1)]
    on = ccd_index >= 0
    maps = joint_fit(xy[on], ccd_index[on], boxes, ref, params.match_radius_arcsec / scale, params.min_matched,
                     params.clip_sigma)
    notes = [f"CCD {m.ccd}: fewer than {params.min_matched} matched stars, frame WCS kept"
             for m in maps.ccds if m.n_stars == 0]
    return maps, notes

def map_cards(maps: FrameMaps) -> fits.Header:
    """Header cards of a frame's maps (read back by :func:`maps_from_header`)."""
    h = fits.Header()
    h[f"{CARD_PREFIX}NCCD"] = (len(maps.ccds), "CCDs with a pixel map before the WCS")
    for i, m in enumerate(maps.ccds):
        p = f"{CARD_PREFIX}{i}"
        h[f"{p}CCD"] = (m.ccd, f"map {i}: CCD index")
        h[f"{p}BOX"] = (",".join(str(v) for v in m.box), f"map {i}: x0,x1,y0,y1 (0-based, end excl.)")
        h[f"{p}CX"], h[f"{p}CY"] = (m.centre[0], f"map {i}: centre x (px)"), (m.centre[1], f"map {i}: centre y")
        h[f"{p}TX"], h[f"{p}TY"] = (m.shift[0], f"map {i}: shift x (px)"), (m.shift[1], f"map {i}: shift y (px)")
        for (r, c), value in np.ndenumerate(np.asarray(m.matrix, float)):
            h[f"{p}M{r + 1}{c + 1}"] = (float(value), f"map {i}: matrix")
        h[f"{p}NST"] = (m.n_stars, f"map {i}: stars fitted (0: frame WCS)")
        h[f"{p}RMS"] = (m.rms, f"map {i}: fit RMS (px)")
    g = maps.smooth
    if g is not None:
        h[f"{CARD_PREFIX}GORD"] = (g.order, "smooth frame correction: degree")
        h[f"{CARD_PREFIX}GOX"], h[f"{CARD_PREFIX}GOY"] = (g.origin[0], "smooth correction origin x"), (
            g.origin[1], "smooth correction origin y")
        h[f"{CARD_PREFIX}GNRM"] = (g.norm, "smooth correction scale (px)")
        for i, (cx, cy) in enumerate(zip(g.coef_x, g.coef_y, strict=True)):
            h[f"{CARD_PREFIX}GX{i}"] = (cx, f"smooth correction x, term {i}")
            h[f"{CARD_PREFIX}GY{i}"] = (cy, f"smooth correction y, term {i}")
    return h


def remove_cards(header: fits.Header) -> None:
    """Remove every map card (before a new solution is written)."""
    for key in [k for k in header if _CARD.match(k)]:
        del header[key]


def maps_from_header(header: fits.Header) -> FrameMaps | None:
    """The maps of a workspace frame (None without ``CWNCCD``)."""
    if f"{CARD_PREFIX}NCCD" not in header:
        return None
    ccds = []
    for i in range(int(header[f"{CARD_PREFIX}NCCD"])):
        p = f"{CARD_PREFIX}{i}"
        x0, x1, y0, y1 = (int(v) for v in str(header[f"{p}BOX"]).split(","))
        matrix = ((float(header[f"{p}M11"]), float(header[f"{p}M12"])),
                  (float(header[f"{p}M21"]), float(header[f"{p}M22"])))
        ccds.append(CCDMap(int(header[f"{p}CCD"]), (x0, x1, y0, y1), (float(header[f"{p}CX"]), float(header[f"{p}CY"])),
                           (float(header[f"{p}TX"]), float(header[f"{p}TY"])), matrix, int(header[f"{p}NST"]),
                           float(header[f"{p}RMS"])))
    smooth = None
    if f"{CARD_PREFIX}GORD" in header:
        order = int(header[f"{CARD_PREFIX}GORD"])
        n = len(monomials(np.zeros(1), np.zeros(1), order))
        smooth = Smooth((float(header[f"{CARD_PREFIX}GOX"]), float(header[f"{CARD_PREFIX}GOY"])),
                        float(header[f"{CARD_PREFIX}GNRM"]), order,
                        tuple(float(header[f"{CARD_PREFIX}GX{i}"]) for i in range(n)),
                        tuple(float(header[f"{CARD_PREFIX}GY{i}"]) for i in range(n)))
    return FrameMaps(ccds, smooth)
