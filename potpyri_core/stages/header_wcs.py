"""A starting WCS from raw header keywords, as the instrument settings describe it.

A celestial header WCS (CTYPE ``RA---TAN`` ...) is kept when the settings trust it; a
detector WCS (LRIS ``PANE_X``, Binospec ``BINO_X``, amplifier WCSs) never counts as one.
Otherwise the WCS is built from the pointing (RA/Dec in degrees or sexagesimal), the pixel
scale and the position angle with the instrument's sign, offset and parity
(:class:`~potpyri_core.settings.HeaderWCS`).
"""

from __future__ import annotations

import math
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS, Sip

from potpyri_core.settings import HeaderWCS, InstrumentSettings

CELESTIAL_PREFIXES = ("RA--", "DEC-", "GLON", "GLAT", "ELON", "ELAT")
"""First four characters of a celestial CTYPE."""

WCS_KEY_PREFIXES = ("CTYPE", "CRVAL", "CRPIX", "CDELT", "CUNIT", "CD1_", "CD2_", "PC1_", "PC2_", "PV1_", "PV2_",
                    "A_", "B_", "AP_", "BP_", "WCSNAME", "LONPOLE", "LATPOLE", "RADESYS", "RADECSYS", "WCSAXES")
"""Header keywords of the primary WCS removed before a starting WCS is written."""


def is_celestial(header: Any) -> bool:
    """Return True when the header's primary WCS is a sky WCS (not a detector/pane WCS).

    Parameters
    ----------
    header : mapping
        FITS header.
    """
    ctypes = [str(header.get(f"CTYPE{i}", "")).upper() for i in (1, 2)]
    return all(c[:4] in CELESTIAL_PREFIXES for c in ctypes)


def pointing(header: Any, settings: HeaderWCS) -> SkyCoord:
    """Telescope pointing from the header.

    Parameters
    ----------
    header : mapping
        Raw (merged) header.
    settings : HeaderWCS
        Keywords and units.

    Raises
    ------
    KeyError
        When a pointing keyword is missing.
    ValueError
        When a value cannot be read as an angle.
    """
    for key in (settings.ra_keyword, settings.dec_keyword):
        if key not in header:
            raise KeyError(f"pointing keyword {key} missing from the header (settings header_wcs)")
    ra, dec = header[settings.ra_keyword], header[settings.dec_keyword]
    ra_unit = settings.ra_unit
    if ra_unit == "auto":
        ra_unit = "hourangle" if isinstance(ra, str) and ":" in ra.strip() or (
            isinstance(ra, str) and " " in ra.strip()) else "deg"
    ra_value = float(ra) if ra_unit == "deg" and not isinstance(ra, str) else ra
    dec_value = float(dec) if not isinstance(dec, str) else dec
    try:
        return SkyCoord(ra_value, dec_value, unit=(u.hourangle if ra_unit == "hourangle" else u.deg, u.deg))
    except ValueError as exc:
        raise ValueError(f"cannot read the pointing {settings.ra_keyword}={ra!r} {settings.dec_keyword}={dec!r}:"
                         f" {exc}") from exc


def position_angle(header: Any, settings: HeaderWCS) -> float:
    """Position angle of the detector +y axis, east of north (deg); ``pa_offset`` alone when
    the header lacks the keyword."""
    if settings.pa_keyword is None or settings.pa_keyword not in header:
        return settings.pa_offset  # the blind solver searches any rotation
    return settings.pa_sign * float(header[settings.pa_keyword]) + settings.pa_offset


def cd_matrix(scale_arcsec: float, pa_deg: float, flip: bool) -> np.ndarray:
    """CD matrix (deg/px) for a pixel scale, a position angle and a parity.

    With ``pa_deg = 0`` and no flip, +y points north and +x west (east to the left).
    """
    c, s = math.cos(math.radians(pa_deg)), math.sin(math.radians(pa_deg))
    cd = scale_arcsec / 3600.0 * np.array([[-c, s], [s, c]])
    if flip:
        cd[:, 0] *= -1.0
    return cd


def radial_sip(k3: float, crpix: tuple[float, float], half_size: float) -> Sip:
    """SIP of the radial model ``u' = u (1 + k3 r**2)`` about ``crpix``, with a fitted inverse.

    Parameters
    ----------
    k3 : float
        Coefficient in binned pixels (px**-2).
    crpix : tuple of float
        Reference pixel (1-based) the distortion is centred on.
    half_size : float
        Half-extent (px) over which the inverse (AP/BP) is fitted.
    """
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[3, 0] = a[1, 2] = k3
    b[0, 3] = b[2, 1] = k3
    ap, bp = inverse_sip(a, b, half_size)
    return Sip(a, b, ap, bp, crpix)


def least_squares(design: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Linear least squares by normal equations on equilibrated columns.

    The systems here are small (tens of columns) and well scaled; LAPACK's SVD solver
    (``numpy.linalg.lstsq``) costs 1000 times more on a loaded multi-threaded BLAS.
    """
    norm = np.sqrt(np.sum(design**2, axis=0))
    norm[norm == 0] = 1.0
    scaled = design / norm
    return np.linalg.solve(scaled.T @ scaled, scaled.T @ rhs) / (norm if rhs.ndim == 1 else norm[:, None])


def inverse_sip(a: np.ndarray, b: np.ndarray, half_size: float, order: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares AP/BP inverse of SIP ``a``, ``b`` over a square of half-side ``half_size`` px."""
    grid = np.linspace(-1.1 * half_size, 1.1 * half_size, 25)
    uu, vv = (g.ravel() for g in np.meshgrid(grid, grid))
    fu = uu + _poly(a, uu, vv)
    fv = vv + _poly(b, uu, vv)
    terms = [(p, q) for p in range(order + 1) for q in range(order + 1 - p) if p + q >= 1]
    norm = max(half_size, 1.0)
    design = np.stack([(fu / norm) ** p * (fv / norm) ** q for p, q in terms], axis=1)
    cu = least_squares(design, uu - fu)
    cv = least_squares(design, vv - fv)
    ap = np.zeros((order + 1, order + 1))
    bp = np.zeros((order + 1, order + 1))
    for (p, q), x, y in zip(terms, cu, cv, strict=True):
        ap[p, q] = x / norm ** (p + q)
        bp[p, q] = y / norm ** (p + q)
    return ap, bp


def _poly(coeffs: np.ndarray, uu: np.ndarray, vv: np.ndarray) -> np.ndarray:
    out = np.zeros_like(uu, dtype=float)
    for p in range(coeffs.shape[0]):
        for q in range(coeffs.shape[1]):
            if coeffs[p, q]:
                out += coeffs[p, q] * uu**p * vv**q
    return out


def reference_pixel(settings: HeaderWCS, shape: tuple[int, int], binning: int, header: Any) -> tuple[float, float]:
    """1-based binned pixel the pointing refers to (mosaic centre unless the settings say
    otherwise), moved by the chip offset of a one-file-per-chip instrument."""
    ny, nx = shape
    if settings.reference_pixel is None:
        x, y = (nx + 1) / 2.0, (ny + 1) / 2.0
    else:
        x, y = ((settings.reference_pixel[0] - 0.5) / binning + 0.5, (settings.reference_pixel[1] - 0.5) / binning + 0.5)
    if settings.chip_keyword and settings.chip_keyword in header:
        dx, dy = settings.chip_offsets.get(str(header[settings.chip_keyword]).strip(), (0.0, 0.0))
        x, y = x - dx / binning, y - dy / binning
    return x, y


def starting_wcs(header: Any, instrument: InstrumentSettings, shape: tuple[int, int], binning: int) -> WCS:
    """The starting WCS of a frame built from its raw header keywords.

    Parameters
    ----------
    header : mapping
        Raw merged header (pointing and position-angle keywords).
    instrument : InstrumentSettings
        Its ``header_wcs`` section describes the keywords, parity and distortion.
    shape : tuple of int
        Assembled frame shape ``(ny, nx)`` in binned pixels.
    binning : int
        On-chip binning.

    Returns
    -------
    astropy.wcs.WCS
        TAN (TAN-SIP with the known radial distortion) WCS centred on the reference pixel.
    """
    settings = instrument.header_wcs
    centre = pointing(header, settings)
    scale = (settings.pixel_scale or instrument.pixel_scale) * binning
    wcs = WCS(naxis=2)
    crpix = reference_pixel(settings, shape, binning, header)
    wcs.wcs.crpix = list(crpix)
    wcs.wcs.crval = [float(centre.ra.deg), float(centre.dec.deg)]
    wcs.wcs.cd = cd_matrix(scale, position_angle(header, settings), settings.flip)
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    if settings.distortion_k3:
        wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
        wcs.sip = radial_sip(settings.distortion_k3 * binning**2, crpix, max(shape) / 2.0)
    wcs.pixel_shape = (shape[1], shape[0])
    wcs.wcs.set()
    return wcs


def replace_wcs(header: fits.Header, wcs: WCS) -> None:
    """Remove the WCS keywords of ``header`` (primary and alternates, e.g. a detector pane WCS)
    and write ``wcs`` in their place."""
    for key in list(header.keys()):
        if key.startswith(WCS_KEY_PREFIXES):
            del header[key]
    header.update(wcs.to_header(relax=True))


def apply_starting_wcs(header: fits.Header, raw_header: Any, instrument: InstrumentSettings,
                       shape: tuple[int, int]) -> str:
    """Give an assembled frame's header a celestial starting WCS when it has none it can use.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The assembled frame's header (changed in place).
    raw_header : mapping
        The raw merged header.
    instrument : InstrumentSettings
        Settings of the instrument.
    shape : tuple of int
        Frame shape ``(ny, nx)``.

    Returns
    -------
    str
        Where the starting WCS came from: ``"header"``, ``"pointing"``, or ``"none"`` when the
        header has neither (calibration frames: the header is left as it is).
    """
    if instrument.header_wcs.celestial_wcs and is_celestial(header):
        header["WCSORIG"] = ("header", "starting WCS: the raw celestial header WCS")
        return "header"
    settings = instrument.header_wcs
    if settings.ra_keyword not in raw_header or settings.dec_keyword not in raw_header:
        header["WCSORIG"] = ("none", "no celestial WCS and no pointing keywords")
        return "none"  # calibration frames
    binning = int(str(header.get("BINNING", "1x1")).lower().split("x")[0])
    replace_wcs(header, starting_wcs(raw_header, instrument, shape, binning))
    header["WCSORIG"] = ("pointing", "starting WCS from pointing and PA keywords")
    return "pointing"
