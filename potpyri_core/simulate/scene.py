"""Scene model: configuration, truth catalogue, WCS, PSF rendering and exposures.

All images produced here are in **electrons** on the focal-plane grid (the
assembled mosaic in binned pixels, chip gaps included as zero-valued columns).
Gain, bias level, overscan, read noise and ADU clipping are the business of a
separate packer.

Flux convention
---------------
A point source of magnitude ``m`` delivers ``10**(-0.4 * (m - zeropoint)) *
exptime`` electrons in total to a detector of unit response.  The PSF is a
Moffat profile normalised to 1 over the infinite plane; it is integrated over
each pixel (10x10 sub-sampling) and truncated to a square stamp of half-width
``8 * FWHM`` pixels, which loses ``< 0.05 %`` of the flux for ``beta = 3``
(``< 0.5 %`` for ``beta >= 2``; see :func:`psf_stamp_fraction`).  Stars bright
enough for the wing beyond the stamp to exceed 1 e- per pixel get a larger
stamp.  The recorded image is ``(sky + fringes + sources) * flat + dark`` where the flat
pattern has median exactly 1 over the illuminated pixels, so dividing by a flat
normalised to median 1 recovers the true flux.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

import astropy.units as u
import numpy as np
from astropy.table import Table
from astropy.time import Time
from astropy.wcs import WCS, Sip
from scipy.signal import fftconvolve

from . import artifacts, fringes, nir
from .flatfield import flat_pattern

#: Sub-pixel phases per pixel in the PSF bank (and sub-samples per pixel).
_NPHASE = 10
#: Stamp half-width in units of the FWHM.
_STAMP_RADIUS_FWHM = 8.0
#: Largest stamp half-width for very bright stars, in units of the FWHM.
_MAX_RADIUS_FWHM = 40.0
#: Unit dither pattern (east, north) cycled through; scaled by ``dither_arcsec``.
_DITHER_UNIT = [(0.0, 0.0), (1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0), (1.0, -1.0),
                (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)]
#: True position angle of the detector (deg).
TRUE_POSITION_ANGLE_DEG = 0.05
_KIND_CODES = {"bias": 0, "dark": 1, "flat": 2, "science": 3}


@dataclass
class SceneConfig:
    """Configuration of a simulated night.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the focal-plane grid (assembled mosaic, binned pixels).
    pixel_scale : float
        Arcsec per binned pixel.
    ra, dec : float
        Field centre (deg).
    gap_columns : list of (int, int)
        ``[x0, x1)`` column ranges that are chip gaps (always 0).
    distortion_k3 : float or None
        Radial distortion coefficient: a pixel at radius ``r`` from the grid
        centre is displaced by ``k3 * r**3`` pixels.  ``None`` derives it
        from ``distortion_corner_px`` (the displacement at the grid corner).
    cosmic_ray_rate_per_cm2_s : float
        Cosmic-ray events per cm^2 of (binned) pixel area per second (ground level
        with thick CCDs: ~3 per cm^2 per minute), with
        ``pixel_size_um`` the binned pixel size.
    saturation_e : float or None
        Level above which the packer clips; only used to list saturated stars.
    read_noise_e : float
        Read noise used only for the CR/satellite mask thresholds.
    nir : bool
        Flags NIR data for the packer (``Exposure.config``); the rendering
        itself only differs through ``sky_variation``.
    sky_variation : float
        Fractional frame-to-frame rms of the sky level and amplitude of a
        linear sky gradient across the grid (science frames).
    sky_structure : float
        RMS (fraction of the sky) of a sky pattern fixed on the detector
        (:func:`potpyri_core.simulate.nir.sky_pattern`), science frames.
    hot_pixel_fraction : float
        Fraction of pixels with a high dark current (darks and science).
    ccd_frames : list of tuple
        ``(x0, x1, y0, y1, cx, cy, rotation_deg)`` per CCD: its box on the grid (0-based,
        end exclusive), its physical centre (0-based grid pixels) and its rotation on the
        focal plane (counter-clockwise). Empty: the grid is one unrotated plane. With CCDs,
        sources are rendered on each CCD's own rotated pixel grid (only inside the boxes).
    fringe_amplitude : float
        Peak amplitude of the fringes (fraction of the sky, science frames; 0: none), see
        :mod:`potpyri_core.simulate.fringes`.

    Notes
    -----
    The remaining fields are described by their names; magnitudes are AB in
    ``band`` and ``zeropoint`` is the magnitude giving 1 e-/s.
    """

    shape: tuple[int, int]
    pixel_scale: float
    ra: float
    dec: float
    gap_columns: list[tuple[int, int]] = field(default_factory=list)
    fwhm_arcsec: float = 0.8
    moffat_beta: float = 3.0
    zeropoint: float = 28.0
    sky_mag_per_arcsec2: float = 21.0
    dark_e_per_s: float = 0.0
    band: str = "r"
    exptime: float = 120.0
    flat_exptime: float = 10.0
    n_science: int = 5
    n_flats: int = 3
    n_bias: int = 3
    n_darks: int = 0
    flat_level_e: float = 25000.0
    dither_arcsec: float = 15.0
    distortion_k3: float | None = None
    distortion_corner_px: float = 2.0
    header_offset_arcsec: float = 5.0
    header_rotation_deg: float = 0.3
    star_density_per_arcmin2: float = 70.0
    mag_bright: float = 14.0
    mag_faint: float = 24.0
    count_slope: float = 0.3
    galaxies: bool = False
    galaxy_density_per_arcmin2: float = 20.0
    cosmic_ray_rate_per_cm2_s: float = 0.05
    pixel_size_um: float = 15.0
    satellite_frame: int | None = 1
    n_bad_columns: int = 4
    n_hot_columns: int = 2
    nir: bool = False
    sky_variation: float = 0.0
    sky_structure: float = 0.0
    hot_pixel_fraction: float = 0.0
    fringe_amplitude: float = 0.0
    saturation_e: float | None = None
    read_noise_e: float = 4.0
    epoch: float = 2026.0
    ref_epoch: float = 2016.0
    object_name: str = "SIMFIELD"
    seed: int = 1
    ccd_frames: list[tuple[int, int, int, int, float, float, float]] = field(default_factory=list)

    @property
    def ny(self) -> int:
        """Number of grid rows."""
        return int(self.shape[0])

    @property
    def nx(self) -> int:
        """Number of grid columns."""
        return int(self.shape[1])

    @property
    def fwhm_px(self) -> float:
        """PSF FWHM in binned pixels."""
        return self.fwhm_arcsec / self.pixel_scale

    @property
    def moffat_alpha_px(self) -> float:
        """Moffat core width ``alpha`` in pixels."""
        return self.fwhm_px / (2.0 * math.sqrt(2.0 ** (1.0 / self.moffat_beta) - 1.0))

    @property
    def sky_e_per_s_per_pix(self) -> float:
        """Mean sky rate per pixel (e-/s) for unit response."""
        return 10.0 ** (-0.4 * (self.sky_mag_per_arcsec2 - self.zeropoint)) * self.pixel_scale**2

    @property
    def k3(self) -> float:
        """Radial distortion coefficient actually used (px^-2)."""
        if self.distortion_k3 is not None:
            return float(self.distortion_k3)
        return self.distortion_corner_px / self.corner_radius_px**3

    @property
    def corner_radius_px(self) -> float:
        """Distance from the grid centre to a corner pixel centre."""
        return math.hypot((self.nx - 1) / 2.0, (self.ny - 1) / 2.0)

    @property
    def centre_px(self) -> tuple[float, float]:
        """Grid centre ``(x, y)`` in 0-based pixel coordinates."""
        return (self.nx - 1) / 2.0, (self.ny - 1) / 2.0

    def gap_mask(self) -> np.ndarray:
        """Boolean column mask (length ``nx``), True for gap columns."""
        gap = np.zeros(self.nx, bool)
        for x0, x1 in self.gap_columns:
            gap[max(x0, 0):min(x1, self.nx)] = True
        return gap

    def pixel_area_cm2(self) -> float:
        """Physical area of one binned pixel (cm^2)."""
        return (self.pixel_size_um * 1e-4) ** 2

    def to_dict(self) -> dict:
        """JSON-friendly dictionary of all fields."""
        d = dataclasses.asdict(self)
        d["shape"] = list(self.shape)
        d["gap_columns"] = [list(g) for g in self.gap_columns]
        d["ccd_frames"] = [list(c) for c in self.ccd_frames]
        return d


@dataclass
class Detector:
    """Night-constant detector properties (seeded once per night).

    Attributes
    ----------
    flat : numpy.ndarray
        Flat-field response pattern (float32, median 1 over non-gap pixels,
        dead columns ~0.05, gap columns 0).
    dead_columns : list of int
        Columns with ~5 % response.
    hot_columns : dict of int to float
        Column -> constant extra charge (e-) present in every frame.
    fringe : numpy.ndarray or None
        Fringe pattern (-1..1, :func:`~potpyri_core.simulate.fringes.fringe_pattern`) when
        the night has fringes.
    """

    flat: np.ndarray
    dead_columns: list[int]
    hot_columns: dict[int, float]
    fringe: np.ndarray | None = None


@dataclass
class Exposure:
    """One rendered exposure in electrons plus its truth.

    Attributes
    ----------
    image : numpy.ndarray
        float32 electrons, ``cfg.shape``; gap columns exactly 0.
    cr_mask : numpy.ndarray
        Pixels where an injected CR adds more than 5 sigma of the local noise.
    satellite_mask : numpy.ndarray
        Pixels where the satellite trail adds more than 1 sigma.
    dither_offset_arcsec : tuple of float
        Pointing offset (east, north) of a science frame; (0, 0) otherwise.
    fringe_e : float
        Peak amplitude (e-) of the fringe pattern added to a science frame (0: none).
    """

    image: np.ndarray
    kind: str
    index: int
    exptime: float
    mjd: float
    object_name: str
    band: str
    config: SceneConfig
    true_wcs: WCS | None = None
    header_wcs: WCS | None = None
    sky_e_per_pix: float = 0.0
    cr_mask: np.ndarray | None = None
    satellite_mask: np.ndarray | None = None
    saturated_star_ids: list[int] = field(default_factory=list)
    dither_offset_arcsec: tuple[float, float] = (0.0, 0.0)
    fringe_e: float = 0.0


# --------------------------------------------------------------------------- #
# Random streams
# --------------------------------------------------------------------------- #
def frame_rng(cfg: SceneConfig, kind: str, index: int) -> np.random.Generator:
    """Independent, reproducible random stream of one exposure.

    Parameters
    ----------
    cfg : SceneConfig
        Configuration (its ``seed`` is used).
    kind : str
        ``"bias"``, ``"dark"``, ``"flat"`` or ``"science"``.
    index : int
        Exposure index within its kind.

    Returns
    -------
    numpy.random.Generator
    """
    return np.random.default_rng([cfg.seed, 100 + _KIND_CODES[kind], index])


def make_detector(cfg: SceneConfig, rng: np.random.Generator | None = None) -> Detector:
    """Draw the night-constant detector: flat pattern, dead and hot columns.

    Parameters
    ----------
    cfg : SceneConfig
        Configuration.
    rng : numpy.random.Generator, optional
        Random stream; default is derived from ``cfg.seed``.

    Returns
    -------
    Detector
    """
    rng = np.random.default_rng([cfg.seed, 2]) if rng is None else rng
    dead, hot = artifacts.choose_columns(cfg, rng)
    flat = flat_pattern(cfg, rng, dead_columns=dead)
    fringe = fringes.fringe_pattern(cfg) if cfg.fringe_amplitude > 0 else None
    return Detector(flat=flat, dead_columns=dead, hot_columns=hot, fringe=fringe)


# --------------------------------------------------------------------------- #
# Truth catalogue
# --------------------------------------------------------------------------- #
def dither_offset(cfg: SceneConfig, index: int) -> tuple[float, float]:
    """Pointing offset (east, north) in arcsec of science frame ``index``.

    Parameters
    ----------
    cfg : SceneConfig
        Configuration.
    index : int
        Science frame index.

    Returns
    -------
    tuple of float
    """
    cycle, pos = divmod(index, len(_DITHER_UNIT))
    scale = cfg.dither_arcsec * (1.0 + 0.37 * cycle)
    de, dn = _DITHER_UNIT[pos]
    return de * scale, dn * scale


def _offset_sky(ra: float, dec: float, east: np.ndarray | float,
                north: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic (TAN) offsets in arcsec about (ra, dec) -> (ra, dec) deg."""
    xi = np.radians(np.asarray(east, float) / 3600.0)
    eta = np.radians(np.asarray(north, float) / 3600.0)
    d0 = math.radians(dec)
    denom = math.cos(d0) - eta * math.sin(d0)
    ra_out = math.radians(ra) + np.arctan2(xi, denom)
    dec_out = np.arctan2(math.sin(d0) + eta * math.cos(d0), np.hypot(xi, denom))
    return np.degrees(ra_out) % 360.0, np.degrees(dec_out)


def _powerlaw_mags(rng: np.random.Generator, n: int, m1: float, m2: float,
                   slope: float) -> np.ndarray:
    """Magnitudes with dN/dm ~ 10**(slope*m) between m1 and m2."""
    a, b = 10.0 ** (slope * m1), 10.0 ** (slope * m2)
    return np.log10(a + rng.uniform(size=n) * (b - a)) / slope


def make_truth_catalog(cfg: SceneConfig, rng: np.random.Generator) -> Table:
    """Draw the true sources covering the field, all dithers and a margin.

    Parameters
    ----------
    cfg : SceneConfig
        Configuration.
    rng : numpy.random.Generator
        Random stream.

    Returns
    -------
    astropy.table.Table
        Columns ``id, ra, dec`` (at ``cfg.epoch``), ``ra_ref, dec_ref`` (at
        ``cfg.ref_epoch``), ``pmra`` (mas/yr, includes cos dec), ``pmdec``
        (mas/yr), ``mag`` (AB, ``cfg.band``), ``flux_e_per_s``,
        ``is_galaxy``, ``r_half_arcsec``, ``axis_ratio``, ``pa_deg``
        (galaxy shape; 0/1/0 for stars).
    """
    dmax = max(math.hypot(*dither_offset(cfg, i)) for i in range(max(cfg.n_science, 1)))
    margin = dmax + cfg.header_offset_arcsec + _STAMP_RADIUS_FWHM * cfg.fwhm_arcsec + 10.0
    hx = cfg.nx * cfg.pixel_scale / 2.0 + margin
    hy = cfg.ny * cfg.pixel_scale / 2.0 + margin
    area = 4.0 * hx * hy / 3600.0

    n_star = rng.poisson(cfg.star_density_per_arcmin2 * area)
    mags = [_powerlaw_mags(rng, n_star, cfg.mag_bright, cfg.mag_faint, cfg.count_slope)]
    is_gal = [np.zeros(n_star, bool)]
    n_gal = rng.poisson(cfg.galaxy_density_per_arcmin2 * area) if cfg.galaxies else 0
    mags.append(_powerlaw_mags(rng, n_gal, 19.0, cfg.mag_faint, 0.35))
    is_gal.append(np.ones(n_gal, bool))
    mag = np.concatenate(mags)
    is_galaxy = np.concatenate(is_gal)
    n = mag.size

    east = rng.uniform(-hx, hx, n)
    north = rng.uniform(-hy, hy, n)
    ra_ref, dec_ref = _offset_sky(cfg.ra, cfg.dec, east, north)

    # Disk-like proper motions: a few mas/yr plus a 5 % high-PM tail.
    pm_sig = np.where(rng.uniform(size=n) < 0.05, 25.0, 4.0)
    pmra = -2.0 + pm_sig * rng.standard_normal(n)
    pmdec = -3.0 + pm_sig * rng.standard_normal(n)
    pmra[is_galaxy] = 0.0
    pmdec[is_galaxy] = 0.0
    dt = cfg.epoch - cfg.ref_epoch
    dec = dec_ref + pmdec * dt / 3.6e6
    ra = (ra_ref + pmra * dt / 3.6e6 / np.cos(np.radians(dec_ref))) % 360.0

    r_half = np.zeros(n)
    axis_ratio = np.ones(n)
    pa = np.zeros(n)
    r_half[is_galaxy] = 0.8 * 10.0 ** (-0.1 * (mag[is_galaxy] - 19.0)) * rng.lognormal(0, 0.3, n_gal)
    axis_ratio[is_galaxy] = rng.uniform(0.3, 1.0, n_gal)
    pa[is_galaxy] = rng.uniform(0.0, 180.0, n_gal)

    tab = Table()
    tab["id"] = np.arange(1, n + 1, dtype=np.int64)
    tab["ra"] = ra
    tab["dec"] = dec
    tab["ra_ref"] = ra_ref
    tab["dec_ref"] = dec_ref
    tab["pmra"] = pmra
    tab["pmdec"] = pmdec
    tab["mag"] = mag
    tab["flux_e_per_s"] = 10.0 ** (-0.4 * (mag - cfg.zeropoint))
    tab["is_galaxy"] = is_galaxy
    tab["r_half_arcsec"] = r_half
    tab["axis_ratio"] = axis_ratio
    tab["pa_deg"] = pa
    for col, unit in (("ra", u.deg), ("dec", u.deg), ("ra_ref", u.deg), ("dec_ref", u.deg),
                      ("pmra", u.mas / u.yr), ("pmdec", u.mas / u.yr), ("mag", u.mag),
                      ("r_half_arcsec", u.arcsec), ("pa_deg", u.deg)):
        tab[col].unit = unit
    tab.meta.update(band=cfg.band, epoch=cfg.epoch, ref_epoch=cfg.ref_epoch,
                    zeropoint=cfg.zeropoint,
                    flux_convention="total e- = flux_e_per_s * exptime (unit response)")
    return tab


# --------------------------------------------------------------------------- #
# WCS
# --------------------------------------------------------------------------- #
def _pointing(cfg: SceneConfig, dither_index: int) -> tuple[float, float]:
    de, dn = dither_offset(cfg, dither_index)
    ra, dec = _offset_sky(cfg.ra, cfg.dec, de, dn)
    return float(ra), float(dec)


def _cd_matrix(scale_deg: float, pa_deg: float) -> np.ndarray:
    """North-up, east-left CD matrix rotated by ``pa_deg``."""
    c, s = math.cos(math.radians(pa_deg)), math.sin(math.radians(pa_deg))
    return scale_deg * np.array([[-c, s], [s, c]])


def _fit_inverse_sip(k3: float, half_x: float, half_y: float,
                     order: int) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares AP/BP for the radial model u' = u (1 + k3 r^2)."""
    gu, gv = np.meshgrid(np.linspace(-1.1 * half_x, 1.1 * half_x, 61),
                         np.linspace(-1.1 * half_y, 1.1 * half_y, 61))
    uu, vv = gu.ravel(), gv.ravel()
    r2 = uu**2 + vv**2
    fu, fv = uu * (1 + k3 * r2), vv * (1 + k3 * r2)
    terms = [(p, q) for p in range(order + 1) for q in range(order + 1 - p) if p + q >= 1]
    norm = max(half_x, half_y)
    design = np.stack([(fu / norm) ** p * (fv / norm) ** q for p, q in terms], axis=1)
    cu, *_ = np.linalg.lstsq(design, uu - fu, rcond=None)
    cv, *_ = np.linalg.lstsq(design, vv - fv, rcond=None)
    ap = np.zeros((order + 1, order + 1))
    bp = np.zeros((order + 1, order + 1))
    # Drop numerically-zero terms (< 1e-9 px at the grid edge) for a clean header.
    cu[np.abs(cu) < 1e-9] = 0.0
    cv[np.abs(cv) < 1e-9] = 0.0
    for (p, q), a, b in zip(terms, cu, cv, strict=True):
        ap[p, q] = a / norm ** (p + q)
        bp[p, q] = b / norm ** (p + q)
    return ap, bp


def true_wcs(cfg: SceneConfig, dither_index: int) -> WCS:
    """True TAN-SIP WCS of science frame ``dither_index``.

    The distortion is purely radial about the grid centre (= CRPIX):
    ``(u, v) -> (u, v) * (1 + k3 * (u**2 + v**2))``, written exactly as SIP
    order 3 (A_3_0 = A_1_2 = B_0_3 = B_2_1 = k3).  AP/BP (order 5) are a
    least-squares inverse, accurate to < 1e-3 px over the grid.

    Parameters
    ----------
    cfg : SceneConfig
        Configuration.
    dither_index : int
        Science frame index (selects the pointing).

    Returns
    -------
    astropy.wcs.WCS
    """
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    w.wcs.crpix = [(cfg.nx + 1) / 2.0, (cfg.ny + 1) / 2.0]
    w.wcs.crval = list(_pointing(cfg, dither_index))
    w.wcs.cd = _cd_matrix(cfg.pixel_scale / 3600.0, TRUE_POSITION_ANGLE_DEG)
    w.wcs.radesys = "ICRS"
    w.wcs.equinox = 2000.0
    k3 = cfg.k3
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[3, 0] = a[1, 2] = k3
    b[0, 3] = b[2, 1] = k3
    ap, bp = _fit_inverse_sip(k3, cfg.nx / 2.0, cfg.ny / 2.0, order=5)
    w.sip = Sip(a, b, ap, bp, w.wcs.crpix)
    w.pixel_shape = (cfg.nx, cfg.ny)
    w.wcs.set()
    return w


def header_wcs(cfg: SceneConfig, dither_index: int, rng: np.random.Generator) -> WCS:
    """Approximate telescope-header WCS (plain TAN) of a science frame.

    CRVAL is off by ``cfg.header_offset_arcsec`` in a random direction and
    the CD matrix is rotated by ``cfg.header_rotation_deg`` with random sign.

    Parameters
    ----------
    cfg : SceneConfig
        Configuration.
    dither_index : int
        Science frame index.
    rng : numpy.random.Generator
        Random stream.

    Returns
    -------
    astropy.wcs.WCS
    """
    ra, dec = _pointing(cfg, dither_index)
    theta = rng.uniform(0.0, 2.0 * math.pi)
    sign = rng.choice([-1.0, 1.0])
    ra_h, dec_h = _offset_sky(ra, dec, cfg.header_offset_arcsec * math.cos(theta),
                              cfg.header_offset_arcsec * math.sin(theta))
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crpix = [(cfg.nx + 1) / 2.0, (cfg.ny + 1) / 2.0]
    w.wcs.crval = [float(ra_h), float(dec_h)]
    w.wcs.cd = _cd_matrix(cfg.pixel_scale / 3600.0,
                          TRUE_POSITION_ANGLE_DEG + sign * cfg.header_rotation_deg)
    w.wcs.radesys = "ICRS"
    w.wcs.equinox = 2000.0
    w.pixel_shape = (cfg.nx, cfg.ny)
    w.wcs.set()
    return w


# --------------------------------------------------------------------------- #
# PSF
# --------------------------------------------------------------------------- #
def moffat_density(r2: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Moffat surface density normalised to unit integral over the plane.

    Parameters
    ----------
    r2 : numpy.ndarray
        Squared radius (px^2).
    alpha, beta : float
        Moffat parameters (alpha in px).

    Returns
    -------
    numpy.ndarray
    """
    return (beta - 1.0) / (math.pi * alpha**2) * (1.0 + r2 / alpha**2) ** (-beta)


def psf_stamp_fraction(cfg: SceneConfig) -> float:
    """Fraction of a star's flux inside the standard (square) stamp.

    Parameters
    ----------
    cfg : SceneConfig
        Configuration.

    Returns
    -------
    float
    """
    radius = _stamp_radius(cfg)
    return float(_psf_bank(cfg.moffat_alpha_px, cfg.moffat_beta, radius)[0, 0].sum(dtype=np.float64))


def _stamp_radius(cfg: SceneConfig) -> int:
    return max(math.ceil(_STAMP_RADIUS_FWHM * cfg.fwhm_px), 3)


@functools.lru_cache(maxsize=8)
def _psf_bank(alpha: float, beta: float, radius: int) -> np.ndarray:
    """Pixel-integrated Moffat stamps for sub-pixel phases k/N, k = 0..N.

    ``bank[ky, kx, j, i]`` is the flux fraction in pixel ``(c + j - R,
    c + i - R)`` of a star at ``(c + kx/N, c + ky/N)``.  Built from a
    summed-area table of a 1/N-px fine grid (N x N sub-samples per pixel).
    """
    m = _NPHASE
    nfine = (2 * radius + 4) * m
    uf = -(radius + 2) + (np.arange(nfine) + 0.5) / m
    fine = moffat_density(uf[:, None] ** 2 + uf[None, :] ** 2, alpha, beta) / m**2
    sat = np.zeros((nfine + 1, nfine + 1))
    sat[1:, 1:] = fine.cumsum(0).cumsum(1)
    j = np.arange(-radius, radius + 1)
    bank = np.empty((m + 1, m + 1, 2 * radius + 1, 2 * radius + 1), np.float32)
    for ky in range(m + 1):
        y0 = ((j + radius) * m + (3 * m) // 2 - ky)
        y1 = y0 + m
        for kx in range(m + 1):
            x0 = ((j + radius) * m + (3 * m) // 2 - kx)
            x1 = x0 + m
            bank[ky, kx] = (sat[np.ix_(y1, x1)] - sat[np.ix_(y0, x1)]
                            - sat[np.ix_(y1, x0)] + sat[np.ix_(y0, x0)])
    return bank


def psf_stamp(cfg: SceneConfig, x: float, y: float,
              radius: int | None = None) -> tuple[np.ndarray, int, int]:
    """Pixel-integrated, unit-flux PSF stamp of a point source at (x, y).

    Parameters
    ----------
    cfg : SceneConfig
        Configuration (FWHM, beta, pixel scale).
    x, y : float
        0-based pixel position (pixel centres at integers).
    radius : int, optional
        Stamp half-width in pixels; default ``8 * FWHM``.  Beyond the bank
        radius the profile is evaluated at pixel centres.

    Returns
    -------
    stamp : numpy.ndarray
        ``(2R+1, 2R+1)`` float32 stamp.
    x0, y0 : int
        Grid position of the stamp's ``[0, 0]`` pixel.
    """
    rb = _stamp_radius(cfg)
    bank = _psf_bank(cfg.moffat_alpha_px, cfg.moffat_beta, rb)
    cx, cy = math.floor(x), math.floor(y)
    fx, fy = (x - cx) * _NPHASE, (y - cy) * _NPHASE
    kx, ky = min(int(fx), _NPHASE - 1), min(int(fy), _NPHASE - 1)
    wx, wy = fx - kx, fy - ky
    core = ((1 - wy) * ((1 - wx) * bank[ky, kx] + wx * bank[ky, kx + 1])
            + wy * ((1 - wx) * bank[ky + 1, kx] + wx * bank[ky + 1, kx + 1]))
    radius = rb if radius is None else max(int(radius), rb)
    if radius == rb:
        return core.astype(np.float32, copy=False), cx - rb, cy - rb
    j = np.arange(-radius, radius + 1)
    dx, dy = cx + j - x, cy + j - y
    stamp = moffat_density(dy[:, None] ** 2 + dx[None, :] ** 2,
                           cfg.moffat_alpha_px, cfg.moffat_beta).astype(np.float32)
    off = radius - rb
    stamp[off:off + 2 * rb + 1, off:off + 2 * rb + 1] = core
    return stamp, cx - radius, cy - radius


def _add_stamp(image: np.ndarray, stamp: np.ndarray, x0: int, y0: int) -> None:
    """Add ``stamp`` into ``image`` with its [0, 0] at (x0, y0), clipped."""
    ny, nx = image.shape
    sy, sx = stamp.shape
    ya, yb = max(y0, 0), min(y0 + sy, ny)
    xa, xb = max(x0, 0), min(x0 + sx, nx)
    if ya >= yb or xa >= xb:
        return
    image[ya:yb, xa:xb] += stamp[ya - y0:yb - y0, xa - x0:xb - x0]


def render_sources(cfg: SceneConfig, truth: Table, wcs: WCS,
                   exptime: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise-free image (e-) of all truth sources, unit detector response.

    Parameters
    ----------
    cfg : SceneConfig
        Configuration.
    truth : astropy.table.Table
        Truth catalogue (:func:`make_truth_catalog`).
    wcs : astropy.wcs.WCS
        WCS used to place sources (the true SIP WCS).
    exptime : float
        Exposure time (s).

    Returns
    -------
    image : numpy.ndarray
        float64 image of shape ``cfg.shape``.
    x, y : numpy.ndarray
        0-based pixel positions of all truth sources where they are recorded (on their CCD's
        pixel grid when ``cfg.ccd_frames`` are given).
    """
    image = np.zeros(cfg.shape, np.float64)
    x, y = wcs.all_world2pix(np.asarray(truth["ra"], float), np.asarray(truth["dec"], float), 0)
    flux = np.asarray(truth["flux_e_per_s"], float) * exptime
    if not cfg.ccd_frames:
        _render_into(cfg, image, truth, x, y, flux)
    for x0, x1, y0, y1, cx, cy, rotation in cfg.ccd_frames:
        # a star at grid position q lands on CCD pixel c + R(-rotation) (q - c)
        c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
        dx, dy = x - cx, y - cy
        sub = np.zeros((y1 - y0, x1 - x0), np.float64)
        _render_into(cfg, sub, truth, cx + c * dx + s * dy - x0, cy - s * dx + c * dy - y0, flux)
        image[y0:y1, x0:x1] = sub
    return (image, *ccd_positions(cfg, x, y))


def ccd_positions(cfg: SceneConfig, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid positions where sources at undistorted-plane positions ``(x, y)`` are recorded:
    on a rotated CCD, its pixel; elsewhere unchanged (the inverse of the packing of
    :func:`render_sources`)."""
    out_x, out_y = np.array(x, float), np.array(y, float)
    for x0, x1, y0, y1, cx, cy, rotation in cfg.ccd_frames:
        c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
        px, py = cx + c * (x - cx) + s * (y - cy), cy - s * (x - cx) + c * (y - cy)
        on = (px >= x0 - 0.5) & (px < x1 - 0.5) & (py >= y0 - 0.5) & (py < y1 - 0.5)
        out_x[on], out_y[on] = px[on], py[on]
    return out_x, out_y


def _render_into(cfg: SceneConfig, image: np.ndarray, truth: Table, x: np.ndarray, y: np.ndarray,
                 flux: np.ndarray) -> None:
    """Add every truth source at 0-based pixel positions ``(x, y)`` of ``image`` (clipped)."""
    ny, nx = image.shape
    rb = _stamp_radius(cfg)
    rmax = math.ceil(_MAX_RADIUS_FWHM * cfg.fwhm_px)
    alpha, beta = cfg.moffat_alpha_px, cfg.moffat_beta
    peak_density = (beta - 1.0) / (math.pi * alpha**2)
    is_gal = np.asarray(truth["is_galaxy"], bool)
    inside = ((x > -rmax) & (x < nx + rmax) & (y > -rmax) & (y < ny + rmax))
    for i in np.flatnonzero(inside & ~is_gal):
        # Radius where the wing drops to 1 e-/pix (only matters for bright stars).
        ratio = flux[i] * peak_density
        need = alpha * math.sqrt(max(ratio ** (1.0 / beta) - 1.0, 0.0))
        radius = min(max(rb, math.ceil(need)), rmax)
        if x[i] < -radius or x[i] > nx + radius or y[i] < -radius or y[i] > ny + radius:
            continue
        stamp, x0, y0 = psf_stamp(cfg, float(x[i]), float(y[i]), radius)
        _add_stamp(image, stamp * flux[i], x0, y0)
    if is_gal.any():
        # Galaxy stamps are renormalised to the total flux, so a 4-FWHM kernel suffices.
        rk = min(max(math.ceil(4.0 * cfg.fwhm_px), 3), rb)
        psf = _psf_bank(alpha, beta, rb)[0, 0, rb - rk:rb + rk + 1, rb - rk:rb + rk + 1]
        for i in np.flatnonzero(inside & is_gal):
            _add_galaxy(image, cfg, truth[i], float(x[i]), float(y[i]), flux[i], psf)


def _add_galaxy(image: np.ndarray, cfg: SceneConfig, row, x: float, y: float,
                flux: float, psf: np.ndarray) -> None:
    """Exponential disk convolved with the PSF; stamp normalised to ``flux``."""
    re_px = float(row["r_half_arcsec"]) / cfg.pixel_scale
    rad = psf.shape[0] // 2 + math.ceil(5.0 * re_px)
    cx, cy = round(x), round(y)
    sub = (np.arange(3) - 1) / 3.0
    j = np.arange(-rad, rad + 1)
    dx = (cx + j[None, :, None, None] + sub[None, None, None, :]) - x
    dy = (cy + j[:, None, None, None] + sub[None, None, :, None]) - y
    pa = math.radians(float(row["pa_deg"]))
    q = float(row["axis_ratio"])
    xr = dx * math.cos(pa) + dy * math.sin(pa)
    yr = (-dx * math.sin(pa) + dy * math.cos(pa)) / q
    prof = np.exp(-1.678 * np.sqrt(xr**2 + yr**2) / max(re_px, 0.1)).mean(axis=(2, 3))
    stamp = fftconvolve(prof, psf, mode="same")
    stamp *= flux / stamp.sum()
    _add_stamp(image, stamp, cx - rad, cy - rad)


# --------------------------------------------------------------------------- #
# Exposures
# --------------------------------------------------------------------------- #
def exposure_mjd(cfg: SceneConfig, kind: str, index: int) -> float:
    """Start MJD of an exposure: calibrations in the afternoon/twilight.

    Parameters
    ----------
    cfg : SceneConfig
        Configuration (``epoch`` sets the night).
    kind : str
        Exposure kind.
    index : int
        Index within its kind.

    Returns
    -------
    float
    """
    night = math.floor(Time(cfg.epoch, format="jyear").mjd) + 0.1
    start = {"bias": night - 0.25, "dark": night - 0.2, "flat": night - 0.05, "science": night}[kind]
    step = {"bias": 30.0, "dark": cfg.exptime + 30.0, "flat": cfg.flat_exptime + 30.0,
            "science": cfg.exptime + 30.0}[kind]
    return start + index * step / 86400.0


def _with_hot(cfg: SceneConfig, det: Detector, image: np.ndarray) -> None:
    for col, charge in det.hot_columns.items():
        image[:, col] += charge


def render_exposure(cfg: SceneConfig, kind: str, index: int, truth: Table | None,
                    rng: np.random.Generator, detector: Detector | None = None) -> Exposure:
    """Render one exposure in electrons (before gain, bias and read noise).

    Parameters
    ----------
    cfg : SceneConfig
        Configuration.
    kind : {"bias", "dark", "flat", "science"}
        Exposure kind.
    index : int
        Index within its kind (science: dither position).
    truth : astropy.table.Table or None
        Truth catalogue; required for science frames.
    rng : numpy.random.Generator
        Random stream of this exposure (see :func:`frame_rng`).
    detector : Detector, optional
        Night-constant detector; default :func:`make_detector` from the seed.

    Returns
    -------
    Exposure
    """
    if kind not in _KIND_CODES:
        raise ValueError(f"unknown exposure kind {kind!r}")
    det = make_detector(cfg) if detector is None else detector
    good = ~cfg.gap_mask()[None, :]
    rn2 = cfg.read_noise_e**2
    exptime = {"bias": 0.0, "dark": cfg.exptime, "flat": cfg.flat_exptime,
               "science": cfg.exptime}[kind]
    name = {"bias": "bias", "dark": "dark", "flat": "skyflat",
            "science": cfg.object_name}[kind]
    exp = Exposure(image=np.zeros(cfg.shape, np.float32), kind=kind, index=index,
                   exptime=exptime, mjd=exposure_mjd(cfg, kind, index), object_name=name,
                   band=cfg.band, config=cfg)
    model = np.zeros(cfg.shape, np.float64)
    _with_hot(cfg, det, model)
    if kind == "bias":
        exp.image = (model * good).astype(np.float32)
        exp.cr_mask = np.zeros(cfg.shape, bool)
        exp.satellite_mask = np.zeros(cfg.shape, bool)
        return exp

    model += cfg.dark_e_per_s * exptime
    if cfg.hot_pixel_fraction > 0:
        model += nir.hot_pixels(cfg.shape, cfg.seed, cfg.hot_pixel_fraction) * exptime
    if kind == "flat":
        level = cfg.flat_level_e * rng.uniform(0.7, 1.3)
        yy, xx = _norm_coords(cfg)
        grad = 1.0 + 0.005 * (rng.uniform(-1, 1) * xx + rng.uniform(-1, 1) * yy)
        model += level * grad * det.flat
        exp.sky_e_per_pix = level
    elif kind == "science":
        if truth is None:
            raise ValueError("science exposures need the truth catalogue")
        exp.true_wcs = true_wcs(cfg, index)
        exp.header_wcs = header_wcs(cfg, index, rng)
        exp.dither_offset_arcsec = dither_offset(cfg, index)
        sky = cfg.sky_e_per_s_per_pix * exptime
        light = np.zeros(cfg.shape, np.float64)
        if cfg.sky_variation > 0:
            sky *= max(1.0 + cfg.sky_variation * rng.standard_normal(), 0.3)
            yy, xx = _norm_coords(cfg)
            gx, gy = rng.uniform(-1, 1, 2) * cfg.sky_variation
            light += sky * (1.0 + gx * xx + gy * yy + cfg.sky_structure * nir.sky_pattern(cfg.shape, cfg.seed))
        else:
            light += sky
        exp.sky_e_per_pix = float(sky)
        if det.fringe is not None:
            exp.fringe_e = fringes.fringe_electrons(cfg, index, float(sky))
            light += exp.fringe_e * det.fringe
        sources, sx, sy = render_sources(cfg, truth, exp.true_wcs, exptime)
        light += sources
        del sources
        trail = None
        if cfg.satellite_frame is not None and index == cfg.satellite_frame:
            peak = rng.uniform(30.0, 100.0) * math.sqrt(sky + rn2)
            trail = artifacts.satellite_trail(cfg.shape, rng, peak_e=peak, fwhm_px=cfg.fwhm_px)
            light += trail
            trail *= det.flat
        model += light * det.flat
        del light
        noise = np.sqrt(model + rn2)
        exp.satellite_mask = ((trail > noise) & good if trail is not None
                              else np.zeros(cfg.shape, bool))
        if cfg.saturation_e is not None:
            exp.saturated_star_ids = _saturated_ids(cfg, truth, model, sx, sy)
    image = rng.poisson(np.maximum(model, 0.0)).astype(np.float32)
    n_pix = int(good.sum()) * cfg.ny
    n_cr = rng.poisson(cfg.cosmic_ray_rate_per_cm2_s * cfg.pixel_area_cm2() * n_pix * exptime)
    cr = artifacts.cosmic_ray_image(cfg.shape, n_cr, rng)
    image += cr
    exp.cr_mask = (cr > 5.0 * np.sqrt(model + rn2)) & good
    if exp.satellite_mask is None:
        exp.satellite_mask = np.zeros(cfg.shape, bool)
    image *= good
    exp.image = image
    return exp


def _norm_coords(cfg: SceneConfig) -> tuple[np.ndarray, np.ndarray]:
    """Grid coordinates scaled to [-1, 1] (broadcastable)."""
    yy = np.linspace(-1.0, 1.0, cfg.ny)[:, None]
    xx = np.linspace(-1.0, 1.0, cfg.nx)[None, :]
    return yy, xx


def _saturated_ids(cfg: SceneConfig, truth: Table, model: np.ndarray,
                   x: np.ndarray, y: np.ndarray) -> list[int]:
    """Ids of sources whose 3x3 neighbourhood in ``model`` exceeds saturation."""
    xi, yi = np.round(x).astype(int), np.round(y).astype(int)
    ok = (xi >= 1) & (xi < cfg.nx - 1) & (yi >= 1) & (yi < cfg.ny - 1)
    idx = np.flatnonzero(ok)
    peak = np.full(idx.size, -np.inf)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            peak = np.maximum(peak, model[yi[idx] + dy, xi[idx] + dx])
    ids = np.asarray(truth["id"])[idx[peak > cfg.saturation_e]]
    return [int(i) for i in ids]


__all__ = [
    "TRUE_POSITION_ANGLE_DEG",
    "Detector",
    "Exposure",
    "SceneConfig",
    "dither_offset",
    "exposure_mjd",
    "frame_rng",
    "header_wcs",
    "make_detector",
    "make_truth_catalog",
    "moffat_density",
    "psf_stamp",
    "psf_stamp_fraction",
    "render_exposure",
    "render_sources",
    "true_wcs",
]
