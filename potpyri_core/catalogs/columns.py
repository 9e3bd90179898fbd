"""Normalise catalog tables from VizieR, the Gaia archive and local files to one schema.

Canonical columns: ``ra``, ``dec`` (deg), optional ``pmra``, ``pmdec`` (mas/yr, pmra with
cos dec), ``ref_epoch`` (Julian year), and per band ``mag_<band>`` / ``err_<band>``.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

POSITION_NAMES = {
    "ra": ["ra", "RA_ICRS", "RAICRS", "RAJ2000", "RAdeg", "RA"],
    "dec": ["dec", "DE_ICRS", "DEICRS", "DEJ2000", "DEdeg", "DEC", "Dec"],
    "pmra": ["pmra", "pmRA"],
    "pmdec": ["pmdec", "pmDE"],
    "ref_epoch": ["ref_epoch", "Epoch"],
}
MAGNITUDE_NAMES = {
    "G": (["phot_g_mean_mag", "Gmag"], ["e_Gmag"]),
    "u": (["umag", "uPSF", "u_psf"], ["e_umag", "e_uPSF"]),
    "v": (["vmag", "vPSF", "v_psf"], ["e_vmag", "e_vPSF"]),
    "g": (["gmag", "gPSF", "g_psf"], ["e_gmag", "e_gPSF"]),
    "r": (["rmag", "rPSF", "r_psf"], ["e_rmag", "e_rPSF"]),
    "i": (["imag", "iPSF", "i_psf"], ["e_imag", "e_iPSF"]),
    "z": (["zmag", "zPSF", "z_psf"], ["e_zmag", "e_zPSF"]),
    "y": (["ymag", "yPSF", "y_psf"], ["e_ymag", "e_yPSF"]),
    "J": (["Jmag"], ["e_Jmag"]),
    "H": (["Hmag"], ["e_Hmag"]),
    "K": (["Kmag", "Ksmag"], ["e_Kmag", "e_Ksmag"]),
}
GAIA_DR3_EPOCH = 2016.0
VEGA_COLUMNS = {"Jmag", "Hmag", "Kmag", "Ksmag"}
"""2MASS magnitude columns: Vega system (the table's ``meta['vega_bands']`` lists them)."""
TWOMASS_VEGA_TO_AB = {"J": 0.91, "H": 1.39, "K": 1.85}
"""AB minus Vega magnitudes of the 2MASS J, H, Ks bands (Blanton & Roweis 2007, AJ 133, 734,
Table 1): the one place these offsets are written (settings default, simulator, VizieR)."""
Y_FROM_TWOMASS_JH = 0.610
"""Y (VISTA/VIRCAM, Vega) = J + 0.610 (J - H) from 2MASS J and H (Vega): the transformation
of the ESO VIRCAM pipeline's PHOTCAL_TAB (ESO data-processing FAQ "colour transformations for
the VIRCAM filters": Y = 1.610 J - 0.610 H; Gonzalez-Fernandez et al. 2018, MNRAS 474, 5459).
2MASS has no Y band; J alone is off by 0.61 (J - H), 0.2-0.4 mag for most stars."""
Y_VEGA_TO_AB = 0.600
"""AB minus Vega of the VISTA Y band (Gonzalez-Fernandez et al. 2018, CASU VIRCAM filter
table), for the Y magnitudes made by :func:`twomass_y`."""


def twomass_y(table: Table) -> Table | None:
    """A copy of a normalised 2MASS table with ``mag_Y`` / ``err_Y`` (Vega) made from J and
    H (:data:`Y_FROM_TWOMASS_JH`), or None when the table has no Vega J and H.

    The error is the propagated J and H error (the transformation's own scatter is not
    included).
    """
    vega = table.meta.get("vega_bands", [])
    if not {"J", "H"} <= set(vega) or "mag_J" not in table.colnames or "mag_H" not in table.colnames:
        return None
    out = table.copy()
    j, h = np.asarray(table["mag_J"], float), np.asarray(table["mag_H"], float)
    out["mag_Y"] = j + Y_FROM_TWOMASS_JH * (j - h)
    if "err_J" in table.colnames and "err_H" in table.colnames:
        ej, eh = np.asarray(table["err_J"], float), np.asarray(table["err_H"], float)
        out["err_Y"] = np.hypot((1 + Y_FROM_TWOMASS_JH) * ej, Y_FROM_TWOMASS_JH * eh)
    out.meta["vega_bands"] = [*vega, "Y"]
    return out


def _first(table: Table, names: list[str]) -> str | None:
    for name in names:
        if name in table.colnames:
            return name
    return None


def normalise(table: Table, source: str) -> Table:
    """Return a new table in the canonical schema.

    Parameters
    ----------
    table : astropy.table.Table
        A catalog with VizieR (Gaia DR3 I/355, PS1 II/349, 2MASS II/246, SkyMapper, SDSS)
        or Gaia-archive column names.
    source : str
        Where the table came from, for messages.

    Returns
    -------
    astropy.table.Table
        Magnitudes as in the input; bands whose input columns are Vega (2MASS) are listed
        in ``meta['vega_bands']`` for the caller to convert.

    Raises
    ------
    ValueError
        If the table has no recognisable position columns.
    """
    out = Table()
    for canonical, names in POSITION_NAMES.items():
        name = _first(table, names)
        if name is not None:
            out[canonical] = np.asarray(table[name].filled(np.nan) if hasattr(table[name], "filled") else table[name],
                                        dtype=float)
    if "ra" not in out.colnames or "dec" not in out.colnames:
        raise ValueError(
            f"{source}: no position columns; expected one of {POSITION_NAMES['ra']} and {POSITION_NAMES['dec']}"
        )
    if "pmra" in out.colnames and "ref_epoch" not in out.colnames:
        out["ref_epoch"] = GAIA_DR3_EPOCH
    vega = []
    for band, (mag_names, err_names) in MAGNITUDE_NAMES.items():
        name = _first(table, mag_names)
        if name is None:
            continue
        if name in VEGA_COLUMNS:
            vega.append(band)
        column = table[name]
        out[f"mag_{band}"] = np.asarray(column.filled(np.nan) if hasattr(column, "filled") else column, dtype=float)
        err = _first(table, err_names)
        if err is not None:
            column = table[err]
            out[f"err_{band}"] = np.asarray(column.filled(np.nan) if hasattr(column, "filled") else column, dtype=float)
    out.meta["source"] = source
    out.meta["catalog"] = catalog_identity(table)
    out.meta["vega_bands"] = vega
    return out


def catalog_identity(table: Table) -> str:
    """The survey a table comes from (``ps1``, ``skymapper``, ``sdss``, ``twomass``, ``gaia``),
    as its ``meta['catalog']`` says (``CATALOG`` in a FITS header); ``""`` when unknown.

    Tables written by the catalog cache, ``potpyri catalogs fetch`` and the simulator carry
    it; a person's own file can add it (ECSV meta or a FITS ``CATALOG`` card) so that
    :class:`~potpyri_core.catalogs.local.LocalCatalog` picks it by the instrument's settings.
    """
    meta = {str(k).lower(): v for k, v in table.meta.items()}
    return str(meta.get("catalog", "")).strip().lower()


def bands(table: Table) -> list[str]:
    """Bands with magnitudes in a normalised table."""
    return [c[4:] for c in table.colnames if c.startswith("mag_")]


def at_epoch(table: Table, epoch: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions (deg) propagated linearly with the proper motions to ``epoch`` (Julian year)."""
    ra, dec = np.array(table["ra"]), np.array(table["dec"])
    if "pmra" not in table.colnames:
        return ra, dec
    dt = epoch - np.array(table["ref_epoch"], dtype=float)
    pmra = np.nan_to_num(np.array(table["pmra"], dtype=float))
    pmdec = np.nan_to_num(np.array(table["pmdec"], dtype=float))
    dec_new = dec + pmdec * dt / 3.6e6
    ra_new = ra + pmra * dt / 3.6e6 / np.cos(np.radians(dec))
    return ra_new, dec_new
