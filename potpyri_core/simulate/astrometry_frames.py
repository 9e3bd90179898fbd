"""Small calibrated frames with a known WCS for astrometry tests and benchmarks.

A frame is rendered with the scene machinery (:func:`~potpyri_core.simulate.scene.render_sources`)
on an instrument's pixel scale, with a true TAN-SIP WCS of any position angle and parity plus
the instrument's known radial distortion; its header carries only what the telescope would
write: a celestial WCS off by a pointing error, or (LRIS-like) pointing and position-angle
keywords only. The reference catalog is Gaia-like (G < 21, positions at the frame epoch with
10 mas noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from potpyri_core.frames import Frame
from potpyri_core.settings import InstrumentSettings
from potpyri_core.simulate.refcat import GAIA_LIMIT
from potpyri_core.simulate.scene import SceneConfig, _offset_sky, make_truth_catalog, render_sources
from potpyri_core.stages.header_wcs import apply_starting_wcs, cd_matrix, radial_sip

GAIA_FRACTION = 0.139
"""Fraction of the scene's stars (14 < m < 24, slope 0.3) brighter than the Gaia limit."""


@dataclass
class AstrometryFrame:
    """A simulated frame and what it was made from."""

    frame: Frame
    reference: Table
    """Gaia-like catalog (``ra``, ``dec``, ``mag_G``) at the frame epoch."""
    true_wcs: WCS
    truth: Table
    """All true sources with their pixel positions (``x``, ``y``) and ``snr``."""
    n_gaia_in_frame: int


def simulate_frame(
    instrument: InstrumentSettings,
    seed: int,
    shape: tuple[int, int] = (1024, 1024),
    binning: int = 2,
    n_gaia: float = 10.0,
    pointing_error_arcsec: float = 120.0,
    pa_deg: float = 0.0,
    flip: bool = False,
    header_pa_error_deg: float = 0.0,
    header_flip: bool | None = None,
    pointing_keywords: bool = False,
    fwhm_arcsec: float = 0.8,
    exptime: float = 120.0,
    ra: float = 185.0,
    dec: float = 30.0,
    dither_arcsec: tuple[float, float] = (0.0, 0.0),
) -> AstrometryFrame:
    """Render one sky-subtracted frame in electrons with its truth.

    Parameters
    ----------
    instrument : InstrumentSettings
        Pixel scale, known distortion and header-WCS keywords.
    seed : int
        Random seed.
    shape : tuple of int
        Frame shape ``(ny, nx)`` in binned pixels.
    binning : int
        Binning (pixel scale = instrument scale x binning).
    n_gaia : float
        Mean number of Gaia stars (G < 21) on the frame (sets the star density).
    pointing_error_arcsec : float
        Largest error of the header pointing (a random direction and size up to this).
    pa_deg : float
        True position angle of the detector +y axis (deg east of north).
    flip : bool
        True parity is mirrored.
    header_pa_error_deg : float
        Error of the position angle written in the header.
    header_flip : bool, optional
        Parity the header WCS claims (default: the true parity); with ``pointing_keywords``
        the starting WCS has the instrument's parity whatever the truth.
    pointing_keywords : bool
        Write only RA/Dec (sexagesimal) and the PA keyword (no header WCS), like LRIS.
    fwhm_arcsec, exptime : float
        Seeing and exposure time.
    ra, dec : float
        Centre of the sky field (deg); the same seed gives the same stars.
    dither_arcsec : tuple of float
        Offset (east, north) of the frame centre from the field centre (up to 60").
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    scale = instrument.pixel_scale * binning
    area = nx * ny * scale**2 / 3600.0
    cfg = SceneConfig(shape=shape, pixel_scale=scale, ra=ra, dec=dec, fwhm_arcsec=fwhm_arcsec, exptime=exptime,
                      n_science=1, dither_arcsec=0.0, header_offset_arcsec=60.0,  # margin for dithers
                      star_density_per_arcmin2=n_gaia / (GAIA_FRACTION * area), sky_mag_per_arcsec2=21.0,
                      zeropoint=28.2, seed=seed, epoch=2026.0, ref_epoch=2016.0)
    truth = make_truth_catalog(cfg, rng)
    true = WCS(naxis=2)
    true.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"] if instrument.header_wcs.distortion_k3 else ["RA---TAN",
                                                                                                  "DEC--TAN"]
    true.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    ra_c, dec_c = _offset_sky(ra, dec, dither_arcsec[0], dither_arcsec[1])
    true.wcs.crval = [float(ra_c), float(dec_c)]
    true.wcs.cd = cd_matrix(scale, pa_deg, flip)
    true.wcs.radesys = "ICRS"
    if instrument.header_wcs.distortion_k3:
        true.sip = radial_sip(instrument.header_wcs.distortion_k3 * binning**2, tuple(true.wcs.crpix), max(shape) / 2)
    true.pixel_shape = (nx, ny)
    true.wcs.set()
    sources, x, y = render_sources(cfg, truth, true, exptime)
    sky = cfg.sky_e_per_s_per_pix * exptime
    read_noise = 4.0
    image = rng.poisson(np.maximum(sources + sky, 0.0)).astype(np.float32) - np.float32(sky)
    image += rng.normal(0.0, read_noise, shape).astype(np.float32)
    variance = (np.maximum(sources, 0.0) + sky + read_noise**2).astype(np.float32)
    flux = np.asarray(truth["flux_e_per_s"], float) * exptime
    npix = math.pi * (fwhm_arcsec / scale) ** 2
    truth["x"], truth["y"] = x, y
    truth["snr"] = flux / np.sqrt(flux + npix * (sky + read_noise**2))

    theta = rng.uniform(0, 2 * math.pi)
    offset = pointing_error_arcsec * math.sqrt(rng.uniform())
    ra_h, dec_h = _offset_sky(float(ra_c), float(dec_c), offset * math.cos(theta), offset * math.sin(theta))
    header_pa = pa_deg + header_pa_error_deg
    claimed_flip = flip if header_flip is None else header_flip
    raw = fits.Header()
    header = fits.Header()
    header["BINNING"] = f"{binning}x{binning}"
    settings = instrument.header_wcs
    if pointing_keywords:
        centre = SkyCoord(float(ra_h), float(dec_h), unit="deg")
        raw[settings.ra_keyword] = centre.ra.to_string(unit="hourangle", sep=":", precision=2)
        raw[settings.dec_keyword] = centre.dec.to_string(sep=":", precision=1, alwayssign=True)
        if settings.pa_keyword:
            raw[settings.pa_keyword] = (header_pa - settings.pa_offset) * settings.pa_sign
        header["CTYPE1"], header["CTYPE2"] = "PANE_X", "PANE_Y"  # a detector WCS, as LRIS writes
    else:
        head = WCS(naxis=2)
        head.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        head.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
        head.wcs.crval = [float(ra_h), float(dec_h)]
        head.wcs.cd = cd_matrix(scale, header_pa, claimed_flip)
        header.update(head.to_header())
    apply_starting_wcs(header, raw, instrument, shape)
    header["MJD-OBS"] = 61041.0
    frame = Frame(data=image, variance=variance, mask=np.zeros(shape, np.uint16), header=header, name=f"sim{seed}")

    gaia = np.asarray(truth["mag"], float) - 0.15 < GAIA_LIMIT
    gaia &= ~np.asarray(truth["is_galaxy"], bool)
    noise = rng.normal(0.0, 10.0, (2, int(gaia.sum()))) / 3.6e6
    dec_g = np.asarray(truth["dec"], float)[gaia] + noise[1]
    ra_g = np.asarray(truth["ra"], float)[gaia] + noise[0] / np.cos(np.radians(dec_g))
    reference = Table({"ra": ra_g, "dec": dec_g, "mag_G": np.asarray(truth["mag"], float)[gaia] - 0.15})
    on = (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)
    return AstrometryFrame(frame=frame, reference=reference, true_wcs=true, truth=truth[on],
                           n_gaia_in_frame=int((gaia & on).sum()))


def wcs_error_arcsec(solved: WCS, true: WCS, truth: Table, snr_min: float = 20.0) -> float:
    """RMS (arcsec) of the solved WCS's sky positions vs the true WCS's at the true pixel
    positions of the stars with S/N above ``snr_min``."""
    sel = (np.asarray(truth["snr"]) > snr_min) & ~np.asarray(truth["is_galaxy"], bool)
    xy = np.column_stack([np.asarray(truth["x"])[sel], np.asarray(truth["y"])[sel]])
    if len(xy) == 0:
        return float("nan")
    a = SkyCoord(*true.all_pix2world(xy, 0).T, unit="deg")
    b = SkyCoord(*solved.all_pix2world(xy, 0).T, unit="deg")
    return float(np.sqrt(np.mean(a.separation(b).arcsec ** 2)))
