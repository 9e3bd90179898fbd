"""Astrometry per CCD: each CCD of a solved mosaic frame gets its own pixel map before the
frame's WCS.

A mosaic assembles its CCDs on an axis-aligned grid, but real CCDs sit rotated (DEIMOS:
up to 0.136 deg, 2.7 binned pixels at the far rows of a 4096-row CCD) and shifted by
fractions of a pixel. One WCS for the assembled frame then cannot fit every CCD. With
``astrometry_per_ccd`` in the instrument settings, after the frame's solution (and the
frame-to-frame alignment) every CCD's detections are matched to the reference catalog put on
the frame by that solution, and a similarity map (shift, rotation, scale) about the CCD's
centre is fitted with clipping::

    p_frame = c + t + M (p_ccd - c)

so that the sky position of a CCD pixel ``p_ccd`` is ``frame_wcs(p_frame)``: the frame's WCS
(with its distortion) is the start, and each CCD refines it. The maps are header cards
(``CWn...``, ``n`` the CCD index) of the workspace frame; the resample stage maps every
output pixel through the inverse of the map of the CCD it falls on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from potpyri_core.frames import NO_AMP, Frame
from potpyri_core.settings import InstrumentSettings

CARD_PREFIX = "CW"
"""Prefix of the per-CCD map cards (``CW0X0`` ... ``CW7NST``) and of ``CWNCCD``."""


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


def fit_similarity(src: np.ndarray, dst: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares ``dst = centre + t + M (src - centre)`` with ``M`` a scaled rotation.

    Returns
    -------
    t, M : ndarray
    """
    u = src - centre
    v = dst - centre
    n = len(u)
    design = np.zeros((2 * n, 4))
    design[0::2] = np.column_stack([u[:, 0], -u[:, 1], np.ones(n), np.zeros(n)])
    design[1::2] = np.column_stack([u[:, 1], u[:, 0], np.zeros(n), np.ones(n)])
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, v.ravel(), rcond=None)
    return np.array([tx, ty]), np.array([[a, -b], [b, a]])


def fit_ccd(stars_xy: np.ndarray, ref_xy: np.ndarray, ccd: int, box: tuple[int, int, int, int],
            radius_px: float, min_stars: int, clip_sigma: float = 3.0, iterations: int = 5,
            min_radius_px: float = 1.0) -> CCDMap:
    """Fit one CCD's map to the catalog stars put on the frame by the frame's WCS.

    Parameters
    ----------
    stars_xy : ndarray
        Detections on this CCD (``(n, 2)``, 0-based mosaic pixels).
    ref_xy : ndarray
        Reference catalog positions on the frame (frame WCS inverse), ``(m, 2)``.
    ccd, box : int, tuple
        The CCD and its mosaic box.
    radius_px : float
        First pairing radius (pixels); tightened to ``max(3 rms, min_radius_px)``.
    min_stars : int
        Fewest pairs for a fit.

    Raises
    ------
    CCDFitError
        With fewer than ``min_stars`` pairs.
    """
    from scipy.spatial import cKDTree

    x0, x1, y0, y1 = box
    centre = np.array([(x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0])
    if len(ref_xy) == 0 or len(stars_xy) == 0:
        raise CCDFitError(f"CCD {ccd}: no stars or no catalog stars on it")
    tree = cKDTree(ref_xy)
    t, m = np.zeros(2), np.eye(2)
    radius = radius_px
    keep = None
    for _ in range(iterations):
        moved = centre + t + (stars_xy - centre) @ m.T
        dist, idx = tree.query(moved, distance_upper_bound=radius)
        pair = np.isfinite(dist)
        # one detection per catalog star (the nearest)
        order = np.argsort(dist)
        first = np.zeros(len(dist), bool)
        seen: set[int] = set()
        for i in order:
            if pair[i] and int(idx[i]) not in seen:
                seen.add(int(idx[i]))
                first[i] = True
        keep = first
        if keep.sum() < min_stars:
            raise CCDFitError(f"CCD {ccd}: only {int(keep.sum())} stars matched (need {min_stars})")
        t, m = fit_similarity(stars_xy[keep], ref_xy[idx[keep]], centre)
        resid = centre + t + (stars_xy[keep] - centre) @ m.T - ref_xy[idx[keep]]
        r = np.hypot(*resid.T)
        sigma = np.median(r) / 1.1774  # per axis: the median of a 2-D Gaussian radius is 1.1774 sigma
        good = r <= max(clip_sigma * sigma, 1e-6)
        if good.sum() >= min_stars and good.sum() < keep.sum():
            sel = np.flatnonzero(keep)[good]
            t, m = fit_similarity(stars_xy[sel], ref_xy[idx[sel]], centre)
        rms = float(np.sqrt(np.mean(r[good] ** 2)))
        radius = max(3.0 * rms, min_radius_px)
    assert keep is not None
    rows = ((float(m[0, 0]), float(m[0, 1])), (float(m[1, 0]), float(m[1, 1])))
    return CCDMap(ccd, box, (float(centre[0]), float(centre[1])), (float(t[0]), float(t[1])), rows,
                  int(np.sum(good)), rms)


def refine_ccds(frame: Frame, wcs: WCS, stars: Table, ra: np.ndarray, dec: np.ndarray,
                instrument: InstrumentSettings, radius_arcsec: float, min_stars: int,
                clip_sigma: float = 3.0, margin_px: float = 5.0) -> tuple[list[CCDMap], list[str]]:
    """Fit the map of every CCD of a solved frame against the reference catalog.

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
    radius_arcsec : float
        First pairing radius.
    min_stars : int
        Fewest matched stars for a CCD's map; a CCD with fewer keeps the frame's WCS
        (identity map, ``n_stars = 0``) and is named in the returned notes.

    Returns
    -------
    maps : list of CCDMap
    notes : list of str
        One per CCD left on the frame's WCS.
    """
    scale = float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix)))) * 3600.0
    with np.errstate(invalid="ignore"):
        rx, ry = wcs.all_world2pix(ra, dec, 0, quiet=True)
    ref = np.column_stack([rx, ry])
    ref = ref[np.all(np.isfinite(ref), axis=1)]
    xy = np.column_stack([np.asarray(stars["x"], float), np.asarray(stars["y"], float)])
    maps, notes = [], []
    for ccd, box in ccd_boxes(frame, instrument).items():
        x0, x1, y0, y1 = box
        on = ((xy[:, 0] >= x0 + margin_px) & (xy[:, 0] <= x1 - 1 - margin_px)
              & (xy[:, 1] >= y0 + margin_px) & (xy[:, 1] <= y1 - 1 - margin_px))
        near = ((ref[:, 0] >= x0 - 20) & (ref[:, 0] <= x1 + 20) & (ref[:, 1] >= y0 - 20) & (ref[:, 1] <= y1 + 20))
        try:
            maps.append(fit_ccd(xy[on], ref[near], ccd, box, radius_arcsec / scale, min_stars, clip_sigma))
        except CCDFitError as exc:
            notes.append(f"{exc}: frame WCS kept")
            maps.append(CCDMap(ccd, box, ((x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0)))
    return maps, notes


def map_cards(maps: list[CCDMap]) -> fits.Header:
    """Header cards of the per-CCD maps (read back by :func:`maps_from_header`)."""
    h = fits.Header()
    h[f"{CARD_PREFIX}NCCD"] = (len(maps), "CCDs with a pixel map before the WCS")
    for i, m in enumerate(maps):
        p = f"{CARD_PREFIX}{i}"
        h[f"{p}CCD"] = (m.ccd, f"map {i}: CCD index")
        h[f"{p}BOX"] = (",".join(str(v) for v in m.box), f"map {i}: x0,x1,y0,y1 (0-based, end excl.)")
        h[f"{p}CX"], h[f"{p}CY"] = (m.centre[0], f"map {i}: centre x (px)"), (m.centre[1], f"map {i}: centre y")
        h[f"{p}TX"], h[f"{p}TY"] = (m.shift[0], f"map {i}: shift x (px)"), (m.shift[1], f"map {i}: shift y (px)")
        for (r, c), value in np.ndenumerate(np.asarray(m.matrix, float)):
            h[f"{p}M{r + 1}{c + 1}"] = (float(value), f"map {i}: matrix")
        h[f"{p}NST"] = (m.n_stars, f"map {i}: stars fitted (0: frame WCS)")
        h[f"{p}RMS"] = (m.rms, f"map {i}: fit RMS (px)")
    return h


def remove_cards(header: fits.Header) -> None:
    """Remove every per-CCD map card (before a new solution is written)."""
    count = int(header.get(f"{CARD_PREFIX}NCCD", 0))
    for key in [k for k in header if k == f"{CARD_PREFIX}NCCD"
                or any(k.startswith(f"{CARD_PREFIX}{i}") for i in range(count))]:
        del header[key]


def maps_from_header(header: fits.Header) -> list[CCDMap]:
    """The per-CCD maps of a workspace frame (empty without ``CWNCCD``)."""
    out = []
    for i in range(int(header.get(f"{CARD_PREFIX}NCCD", 0))):
        p = f"{CARD_PREFIX}{i}"
        box = tuple(int(v) for v in str(header[f"{p}BOX"]).split(","))
        matrix = ((float(header[f"{p}M11"]), float(header[f"{p}M12"])),
                  (float(header[f"{p}M21"]), float(header[f"{p}M22"])))
        out.append(CCDMap(int(header[f"{p}CCD"]), box, (float(header[f"{p}CX"]), float(header[f"{p}CY"])),  # type: ignore[arg-type]
                          (float(header[f"{p}TX"]), float(header[f"{p}TY"])), matrix, int(header[f"{p}NST"]),
                          float(header[f"{p}RMS"])))
    return out


def to_ccd_pixels(maps: list[CCDMap], x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame-WCS pixel coordinates to the mosaic pixels that see them, CCD by CCD.

    Coordinates that no CCD's inverse map puts on that CCD are returned unchanged (gaps,
    off the frame).
    """
    out_x, out_y = np.array(x, np.float64), np.array(y, np.float64)
    claimed = np.zeros(np.shape(x), bool)
    for m in maps:
        cx, cy = m.inverse(np.asarray(x, np.float64), np.asarray(y, np.float64))
        on = m.contains(cx, cy) & ~claimed
        out_x[on], out_y[on] = cx[on], cy[on]
        claimed |= on
    return out_x, out_y
