"""Source catalogs as written to a stack: named flag bits, units, calibrated magnitudes.

The APPPHOT and PSFPHOT tables share one set of flag bits (:class:`SourceFlag`, combined
with ``|``), written to each table's header as ``FLAGBn`` cards the way the MASK
extensions carry ``MASKBn``. A calibrated ``mag`` (and its ``mag_err``) is given only where
no bit of the table's ``INVALID`` set is raised; elsewhere it is NaN and the flags say why.
Every column has a unit (``TUNITn``; ``''`` for dimensionless ones).
"""

from __future__ import annotations

from enum import IntFlag

import numpy as np
from astropy.io import fits
from astropy.table import Table


class SourceFlag(IntFlag):
    """Named bits of the ``flags`` column of APPPHOT and PSFPHOT."""

    MASKED = 1
    SATURATED = 2
    CROWDED = 4
    NEGATIVE = 8
    PSF_SHIFTED = 16
    PSF_NOCONV = 32
    PSF_PARTIAL = 64


FLAG_TEXT: dict[SourceFlag, tuple[str, str]] = {
    SourceFlag.MASKED: ("MASKED", "unusable pixel (MASK) in the aperture"),
    SourceFlag.SATURATED: ("SATUR", "saturated pixel in or next to the aperture"),
    SourceFlag.CROWDED: ("CROWDED", "another source within 2 aperture radii"),
    SourceFlag.NEGATIVE: ("NEGFLUX", "flux not positive"),
    SourceFlag.PSF_SHIFTED: ("PSFMOVED", "PSF fit centre moved off the aperture position"),
    SourceFlag.PSF_NOCONV: ("PSFNOCNV", "PSF fit did not converge / no covariance"),
    SourceFlag.PSF_PARTIAL: ("PSFPART", "PSF fit box partly masked or off the image"),
}
"""Bit -> (short name, description); written as ``FLAGBn`` cards."""

APERTURE_INVALID = SourceFlag.MASKED | SourceFlag.SATURATED | SourceFlag.NEGATIVE
"""APPPHOT rows with one of these bits get no calibrated ``mag``."""
PSF_INVALID = APERTURE_INVALID | SourceFlag.PSF_SHIFTED | SourceFlag.PSF_NOCONV | SourceFlag.PSF_PARTIAL
"""PSFPHOT rows with one of these bits get no calibrated ``mag``."""

UNITS: dict[str, str] = {
    "id": "", "ap_index": "", "x": "pix", "y": "pix", "ra": "deg", "dec": "deg",
    "flux": "electron/s", "flux_err": "electron/s", "snr": "", "det_snr": "", "mag_inst": "mag",
    "mag_err": "mag", "mag": "mag", "fwhm": "pix", "elongation": "", "flags": "", "x_err": "pix",
    "y_err": "pix", "qfit": "", "cfit": "", "reduced_chi2": "", "npix": "", "shift": "pix",
    "x_fit": "pix", "y_fit": "pix", "flux_fit": "electron/s", "excluded": "",
}
"""Unit of every column the photometry stage writes (FITS ``TUNIT``)."""


def calibrate(table: Table, zeropoint: float, invalid: SourceFlag) -> None:
    """Add ``mag = mag_inst + zeropoint`` (AB) to ``table`` where no ``invalid`` bit is set.

    ``mag_err`` is set to NaN where ``mag`` is, so that neither is quoted for a
    measurement that is not valid.
    """
    valid = (np.asarray(table["flags"], int) & int(invalid)) == 0
    valid &= np.isfinite(np.asarray(table["mag_inst"], float))
    table["mag"] = np.where(valid, np.asarray(table["mag_inst"], float) + zeropoint, np.nan)
    table["mag_err"] = np.where(valid, np.asarray(table["mag_err"], float), np.nan)


def flag_cards(invalid: SourceFlag) -> list[tuple[str, str, str]]:
    """``FLAGBn`` cards describing :class:`SourceFlag`, and ``FLAGINV`` (bits without ``mag``)."""
    cards = [(f"FLAGB{bit.bit_length() - 1}", f"{int(bit)}={name}", text[:46])
             for bit, (name, text) in FLAG_TEXT.items()]
    cards.append(("FLAGINV", int(invalid), "flags with any of these bits have no mag"))
    return cards


def catalog_hdu(table: Table, name: str, invalid: SourceFlag | None = None,
                cards: list[tuple[str, object, str]] | None = None) -> fits.BinTableHDU:
    """A catalog as a FITS table with a unit on every column and the flag cards.

    Parameters
    ----------
    table : astropy.table.Table
        The catalog; every column must be in :data:`UNITS`.
    name : str
        EXTNAME.
    invalid : SourceFlag, optional
        The bits that void ``mag`` in this table (then ``FLAGBn``/``FLAGINV`` are written).
    cards : list of (key, value, comment), optional
        More header cards (detection threshold, counts).

    Raises
    ------
    KeyError
        A column without a known unit.
    """
    units = [UNITS[column] for column in table.colnames]
    hdu = fits.table_to_hdu(table)
    hdu.name = name
    # written as given: astropy drops units that are not FITS-standard ("electron/s")
    for k, unit in enumerate(units, start=1):
        hdu.header.set(f"TUNIT{k}", unit, after=f"TFORM{k}")
    for key, value, comment in [*(flag_cards(invalid) if invalid is not None else []), *(cards or [])]:
        hdu.header[key] = (value, comment)
    return hdu
