"""Fit a TAN-SIP WCS to star positions with only the freedom the stars can constrain.

The model keeps the reference pixel (the optical axis, where the instrument's known
distortion is centred) and the known distortion fixed and fits, by linear least squares in
the tangent plane,

- a similarity (shift, rotation, scale: 4 parameters) when stars are few,
- a full linear map (6 parameters) with more stars,
- additional SIP terms of order 2..n on top of the known distortion with many stars,

iterating match, fit and outlier clipping. The linear problem is written on the pixel side:
``u + A0(u, v) + dA(u, v) = M (xi, eta) + t``, with ``(xi, eta)`` the tangent-plane offsets
(arcsec) of the reference positions, ``A0`` the fixed distortion and ``dA`` the freed terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS, Sip
from scipy.spatial import cKDTree

from potpyri_core.stages.header_wcs import inverse_sip, least_squares


class FitError(RuntimeError):
    """Too few stars matched to fit the WCS."""


@dataclass
class FitResult:
    """A fitted WCS and its residuals."""

    wcs: WCS
    source_index: np.ndarray
    """Indices of the matched detections."""
    reference_index: np.ndarray
    """Indices of the matched reference positions."""
    residuals: np.ndarray
    """(n, 2) residuals ``(dRA cos Dec, dDec)`` in arcsec of the matched stars."""
    model: str
    """``similarity``, ``affine`` or ``sip<n>``."""

    @property
    def rms(self) -> float:
        """Total RMS residual (arcsec)."""
        return float(np.sqrt(np.mean(np.sum(self.residuals**2, axis=1)))) if len(self.residuals) else np.nan


def tangent_plane(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> np.ndarray:
    """Gnomonic projection about ``(ra0, dec0)``: ``(n, 2)`` offsets (xi east, eta north) in arcsec."""
    ra, dec = np.radians(ra), np.radians(dec)
    a0, d0 = np.radians(ra0), np.radians(dec0)
    cosc = np.sin(d0) * np.sin(dec) + np.cos(d0) * np.cos(dec) * np.cos(ra - a0)
    xi = np.cos(dec) * np.sin(ra - a0) / cosc
    eta = (np.cos(d0) * np.sin(dec) - np.sin(d0) * np.cos(dec) * np.cos(ra - a0)) / cosc
    return np.degrees(np.column_stack([xi, eta])) * 3600.0


def from_tangent_plane(xi_eta: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`tangent_plane` (degrees)."""
    xi, eta = np.radians(np.atleast_2d(xi_eta) / 3600.0).T
    d0 = np.radians(dec0)
    denom = np.cos(d0) - eta * np.sin(d0)
    ra = np.radians(ra0) + np.arctan2(xi, denom)
    dec = np.arctan2(np.sin(d0) + eta * np.cos(d0), np.hypot(xi, denom))
    return np.degrees(ra) % 360.0, np.degrees(dec)


def sip_arrays(wcs: WCS, order: int) -> tuple[np.ndarray, np.ndarray]:
    """The forward SIP of ``wcs`` as ``(order+1, order+1)`` arrays (zeros when it has none)."""
    a = np.zeros((order + 1, order + 1))
    b = np.zeros((order + 1, order + 1))
    if wcs.sip is not None:
        for src, dst in ((wcs.sip.a, a), (wcs.sip.b, b)):
            n = min(src.shape[0], order + 1)
            dst[:n, :n] = src[:n, :n]
    return a, b


def focal_offsets(wcs: WCS, xy: np.ndarray) -> np.ndarray:
    """``(u + A(u, v), v + B(u, v))``: 0-based pixels relative to CRPIX with the SIP applied."""
    uv = np.asarray(xy, float) - (np.array(wcs.wcs.crpix, float) - 1.0)
    if wcs.sip is None:
        return uv
    a, b = sip_arrays(wcs, wcs.sip.a_order)
    return uv + np.column_stack([_poly(a, *uv.T), _poly(b, *uv.T)])


def _terms(order: int) -> list[tuple[int, int]]:
    return [(p, q) for p in range(order + 1) for q in range(order + 1 - p) if p + q >= 2]


def _poly(coeffs: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    out = np.zeros_like(u)
    for p, q in zip(*np.nonzero(coeffs), strict=True):
        out += coeffs[p, q] * u**p * v**q
    return out


def model_for(n_stars: int, affine_min: int, sip_min: dict[int, int]) -> tuple[str, int]:
    """Model name and freed SIP order for ``n_stars`` matched stars."""
    order = max([o for o, n in sip_min.items() if n_stars >= n], default=0)
    if order >= 2:
        return f"sip{order}", order
    return ("affine", 0) if n_stars >= affine_min else ("similarity", 0)


def _solve(uv: np.ndarray, lhs: np.ndarray, plane: np.ndarray, model: str, order: int, parity: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Least squares for M (2x2, px/arcsec), t (2,), and the freed SIP terms (du, dv)."""
    xi, eta = plane.T
    u, v = uv.T
    n = len(u)
    terms = _terms(order)
    da = np.zeros((order + 1, order + 1))
    db = np.zeros((order + 1, order + 1))
    if model == "similarity":
        design = np.zeros((2 * n, 4))
        design[:n] = np.column_stack([xi, eta, np.ones(n), np.zeros(n)])
        design[n:] = np.column_stack([parity * eta, -parity * xi, np.zeros(n), np.ones(n)])
        sol = least_squares(design, np.concatenate([lhs[:, 0], lhs[:, 1]]))
        ma, mb, tu, tv = sol
        matrix = np.array([[ma, mb], [-parity * mb, parity * ma]])
        return matrix, np.array([tu, tv]), da, db
    norm = max(float(np.max(np.abs(uv))), 1.0)
    poly = [-((u / norm) ** p) * (v / norm) ** q for p, q in terms]
    design = np.column_stack([xi, eta, np.ones(n), *poly])
    su = least_squares(design, lhs[:, 0])
    sv = least_squares(design, lhs[:, 1])
    for k, (p, q) in enumerate(terms):
        da[p, q] = su[3 + k] / norm ** (p + q)
        db[p, q] = sv[3 + k] / norm ** (p + q)
    return np.array([su[:2], sv[:2]]), np.array([su[2], sv[2]]), da, db


FEW_STARS = 20
"""Up to this many matched stars, wrong pairs are looked for by leaving each star out."""


def _fit(uv: np.ndarray, lhs: np.ndarray, plane: np.ndarray, model: str, order: int, parity: float
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_solve` plus the pixel residual of every star."""
    matrix, shift, da, db = _solve(uv, lhs, plane, model, order, parity)
    resid = lhs - (plane @ matrix.T + shift) + np.column_stack([_poly(da, *uv.T), _poly(db, *uv.T)])
    return matrix, shift, da, db, np.hypot(*resid.T)


def _worst_star(uv: np.ndarray, lhs: np.ndarray, plane: np.ndarray, model: str, order: int, parity: float
                ) -> int | None:
    """Index of a star inconsistent with all the others, or None.

    Each star is left out in turn; if the fit of the others is five times tighter than the
    fit of all and predicts the star left out ten times worse than their own scatter, that
    star is a wrong pair.
    """
    n = len(uv)
    full = float(np.sqrt(np.mean(_fit(uv, lhs, plane, model, order, parity)[4] ** 2)))
    best, best_rms, best_miss = None, np.inf, 0.0
    for j in range(n):
        keep = np.arange(n) != j
        matrix, shift, da, db, pix = _fit(uv[keep], lhs[keep], plane[keep], model, order, parity)
        rms = float(np.sqrt(np.mean(pix**2)))
        pred = plane[j] @ matrix.T + shift - np.array([_poly(da, *uv[j:j + 1].T)[0], _poly(db, *uv[j:j + 1].T)[0]])
        if rms < best_rms:
            best, best_rms, best_miss = j, rms, float(np.hypot(*(lhs[j] - pred)))
    if best is None or not (best_rms * 5.0 < full and best_miss > 10.0 * max(best_rms, 0.02)):
        return None
    return best


def build_wcs(crpix: np.ndarray, crval: tuple[float, float], cd: np.ndarray, a: np.ndarray, b: np.ndarray,
              shape: tuple[int, int], inverse: bool = True) -> WCS:
    """A TAN (or TAN-SIP when ``a``/``b`` are not all zero) WCS, with a fitted SIP inverse
    (AP/BP) unless ``inverse`` is False."""
    wcs = WCS(naxis=2)
    wcs.wcs.crpix = list(crpix)
    wcs.wcs.crval = list(crval)
    wcs.wcs.cd = cd
    wcs.wcs.radesys = "ICRS"
    if np.any(a) or np.any(b):
        wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
        ap, bp = inverse_sip(a, b, max(shape) / 2.0, order=max(a.shape[0] + 1, 4)) if inverse else (None, None)
        wcs.sip = Sip(a, b, ap, bp, wcs.wcs.crpix)
    else:
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.pixel_shape = (shape[1], shape[0])
    wcs.wcs.set()
    return wcs


def fit_wcs(
    start: WCS,
    xy: np.ndarray,
    ra: np.ndarray,
    dec: np.ndarray,
    shape: tuple[int, int],
    match_radius: float,
    min_matched: int,
    affine_min: int,
    sip_min: dict[int, int],
    clip_sigma: float = 3.0,
    min_radius: float = 0.25,
    iterations: int = 5,
    max_model: str | None = None,
) -> FitResult:
    """Match detections to reference positions and fit the WCS, tightening the match each pass.

    Parameters
    ----------
    start : astropy.wcs.WCS
        Starting WCS (good to ``match_radius``); its CRPIX and SIP are the fixed reference
        pixel and known distortion.
    xy : ndarray, shape (n, 2)
        Detected positions (0-based pixels).
    ra, dec : ndarray
        Reference positions (deg) at the epoch of the frame.
    shape : tuple of int
        Frame shape ``(ny, nx)``.
    match_radius : float
        First matching radius (arcsec).
    min_matched : int
        Fewest matched stars accepted.
    affine_min : int
        Fewest stars for a full linear map (fewer: similarity).
    sip_min : dict
        SIP order -> fewest stars to free the terms of that order.
    clip_sigma : float
        Residuals beyond this many robust sigmas are rejected.
    min_radius : float
        Smallest matching radius (arcsec) the tightening reaches.
    iterations : int
        Match-and-fit passes.
    max_model : str, optional
        Cap the model (``"similarity"`` or ``"affine"``), e.g. for frame-to-frame alignment.

    Raises
    ------
    FitError
        When fewer than ``min_matched`` stars match.
    """
    crpix = np.array(start.wcs.crpix, float)
    cd = start.wcs.cd if start.wcs.has_cd() else np.diag(start.wcs.cdelt) @ start.wcs.get_pc()
    parity = float(np.sign(np.linalg.det(cd)))
    top = max(sip_min, default=3)
    a0, b0 = sip_arrays(start, max(top, 3))
    uv = xy - (crpix - 1.0)
    lhs = uv + np.column_stack([_poly(a0, *uv.T), _poly(b0, *uv.T)])
    wcs = start
    radius = match_radius
    result: FitResult | None = None
    for _ in range(iterations):
        sky = wcs.all_pix2world(xy, 0)
        crval = tuple(float(c) for c in wcs.wcs.crval)
        tree = cKDTree(tangent_plane(ra, dec, *crval))
        dist, idx = tree.query(tangent_plane(sky[:, 0], sky[:, 1], *crval), distance_upper_bound=radius)
        ok = np.flatnonzero(np.isfinite(dist))
        ok = ok[np.argsort(dist[ok])]
        _, first = np.unique(idx[ok], return_index=True)
        si = np.sort(ok[first])
        if len(si) < min_matched:
            raise FitError(f"only {len(si)} stars matched within {radius:.2f}\" (need {min_matched})")
        ri = idx[si]
        model, order = model_for(len(si), affine_min, sip_min)
        if max_model == "similarity" or (max_model == "affine" and model != "similarity"):
            model, order = max_model, 0
        for _ in range(3):
            plane = tangent_plane(ra[ri], dec[ri], *crval)
            matrix, shift, da, db, pix = _fit(uv[si], lhs[si], plane, model, order, parity)
            sigma = 1.4826 * np.median(pix) + 1e-6
            keep = pix < max(clip_sigma * sigma, 1e-3)
            if keep.sum() < min_matched or keep.all():
                break
            si, ri = si[keep], ri[keep]
        # few stars: a wrong pair is absorbed by the fit and hides from sigma clipping; drop the
        # star whose removal shrinks the scatter of the others most, while that is decisive
        while len(si) <= FEW_STARS:
            plane = tangent_plane(ra[ri], dec[ri], *crval)
            worst = _worst_star(uv[si], lhs[si], plane, model, order, parity)
            if worst is None:
                break
            si, ri = np.delete(si, worst), np.delete(ri, worst)
            if len(si) < min_matched:
                raise FitError(f"only {len(si)} consistent stars within {radius:.2f}\" (need {min_matched})")
            matrix, shift, da, db, pix = _fit(uv[si], lhs[si], tangent_plane(ra[ri], dec[ri], *crval), model,
                                              order, parity)
        inv = np.linalg.inv(matrix)
        tangent = -(inv @ shift)
        new_crval = from_tangent_plane(tangent, *crval)
        size = max(a0.shape[0], da.shape[0])
        a = np.zeros((size, size))
        b = np.zeros((size, size))
        a[:a0.shape[0], :a0.shape[1]] += a0
        b[:b0.shape[0], :b0.shape[1]] += b0
        a[:da.shape[0], :da.shape[1]] += da
        b[:db.shape[0], :db.shape[1]] += db
        wcs = build_wcs(crpix, (float(new_crval[0][0]), float(new_crval[1][0])), inv / 3600.0, a, b, shape,
                        inverse=False)
        fitted = wcs.all_pix2world(xy[si], 0)
        d = tangent_plane(ra[ri], dec[ri], fitted[:, 0].mean(), fitted[:, 1].mean())
        f = tangent_plane(fitted[:, 0], fitted[:, 1], fitted[:, 0].mean(), fitted[:, 1].mean())
        residuals = f - d
        result = FitResult(wcs=wcs, source_index=si, reference_index=ri, residuals=residuals, model=model)
        scatter = 1.4826 * np.median(np.hypot(*residuals.T))
        radius = max(min_radius, min(radius, 5.0 * scatter + 0.1))
    assert result is not None
    final = result.wcs
    a, b = sip_arrays(final, final.sip.a_order) if final.sip is not None else (np.zeros((1, 1)), np.zeros((1, 1)))
    result.wcs = build_wcs(crpix, tuple(final.wcs.crval), final.wcs.cd, a, b, shape)
    return result
