"""Synthetic reference catalogues (Gaia DR3, Pan-STARRS1 DR1, 2MASS) from the truth.

Column names follow the Gaia archive (``gaiadr3.gaia_source``) and the VizieR
tables II/349 (PS1) and II/246 (2MASS).  Magnitudes of other bands are
derived from the truth magnitude through a one-parameter stellar colour
model; galaxies are omitted from every catalogue.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from astropy.table import MaskedColumn, Table

from potpyri_core.catalogs.columns import TWOMASS_VEGA_TO_AB
from potpyri_core.catalogs.transforms import TRANSFORMATIONS, transformation

if TYPE_CHECKING:
    from .scene import SceneConfig

#: ``band - r = a + b * c`` (AB) for a star of colour parameter ``c ~ N(0, 1)``, survey bands.
#: Johnson/Cousins B, V, R, I are not listed: they follow from these through the published
#: transformation :data:`JOHNSON_FROM` (:func:`band_minus_r`), so that their AB colours are
#: those of real stars (the earlier R/I entries, -0.2 and -0.6, were Vega).
COLOUR_MODEL: dict[str, tuple[float, float]] = {
    "u": (1.5, 1.0), "g": (0.6, 0.35), "r": (0.0, 0.0), "i": (-0.2, -0.12), "z": (-0.3, -0.2),
    "y": (-0.35, -0.25), "J": (-0.55, -0.35), "H": (-0.7, -0.45), "K": (-0.75, -0.5),
    "G": (-0.15, -0.15),
}
JOHNSON_FROM = "tonry2012"
"""Transformation (:data:`potpyri_core.catalogs.transforms.TRANSFORMATIONS`) that makes the
simulated stars' B, V, R, I (AB) from their PS1 g, r, i."""
BANDS = (*COLOUR_MODEL, *TRANSFORMATIONS[JOHNSON_FROM])
"""Every band the simulator can give a star."""


PS1_SOUTH_LIMIT_DEC = -30.0
"""Pan-STARRS 3pi covers the sky north of this declination."""

def band_minus_r(band: str, colour: np.ndarray | float) -> np.ndarray:
    """``band - r`` (AB) of stars of colour parameter ``colour``.

    Parameters
    ----------
    band : str
        A key of :data:`COLOUR_MODEL`, or B, V, R, I (from g, r, i through :data:`JOHNSON_FROM`).
    colour : array_like
        The stars' colour parameter (``g - r = 0.6 + 0.35 c``).
    """
    colour = np.asarray(colour, float)
    if band in COLOUR_MODEL:
        a, b = COLOUR_MODEL[band]
        return a + b * colour
    rel = transformation(JOHNSON_FROM, band)
    first, second = rel.colour_bands()
    catalog_colour = band_minus_r(first, colour) - band_minus_r(second, colour)
    return band_minus_r(rel.band, colour) + rel.offset + rel.vega_to_ab + rel.coefficient * catalog_colour


#: PS1 5-sigma-ish catalogue limits (AB) and saturation.
PS1_LIMITS = {"g": 23.3, "r": 23.2, "i": 23.1, "z": 22.3, "y": 21.4}
PS1_SATURATION = 14.0
#: 2MASS limits and S/N=10 magnitudes (Vega).
TWOMASS_LIMITS = {"J": 16.8, "H": 16.0, "K": 15.3}
TWOMASS_SN10 = {"J": 15.8, "H": 15.1, "K": 14.3}
GAIA_LIMIT = 21.0
#: Scatter (mag) of PS1 Kron about PSF magnitudes of stars (real PS1 stars: PSF - Kron ~ 0 +- 0.02-0.05).
PS1_KRON_SCATTER = 0.02


def canonical_band(band: str) -> str:
    """Map a filter name to one of :data:`BANDS` (unknown -> ``"r"``).

    Parameters
    ----------
    band : str
        Filter name such as ``"r"``, ``"rp"``, ``"Ks"``, ``"sdss_g"``.

    Returns
    -------
    str
    """
    b = band.strip().replace("'", "").replace("_s", "s")
    b = b.split("_")[-1] if "_" in b else b
    if b in ("Ks", "ks", "k", "K"):
        return "K"
    if b in ("J", "j", "H", "h"):
        return b.upper()
    if b in ("Y", "y"):
        return "y"
    key = b[0] if b else "r"
    if key in BANDS:
        return key
    return key.lower() if key.lower() in BANDS else "r"


def _mag_error(mag: np.ndarray, floor: float, m10: float) -> np.ndarray:
    """``sqrt(floor**2 + (0.1 * 10**(0.4 (m - m10)))**2)``: 0.1 mag at ``m10``."""
    return np.hypot(floor, 0.1 * 10.0 ** (0.4 * (mag - m10)))


def _unique_ids(rng: np.random.Generator, n: int, base: int) -> np.ndarray:
    return base + np.sort(rng.choice(2**50, size=n, replace=False)).astype(np.int64)


def _positions(truth: Table, keep: np.ndarray, epoch: float, ref_epoch: float,
               sigma_mas: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions at ``epoch`` from the reference-epoch truth plus noise."""
    dec0 = np.asarray(truth["dec_ref"], float)[keep]
    ra0 = np.asarray(truth["ra_ref"], float)[keep]
    dt = epoch - ref_epoch
    cosd = np.cos(np.radians(dec0))
    dec = dec0 + (np.asarray(truth["pmdec"], float)[keep] * dt
                  + sigma_mas * rng.standard_normal(dec0.size)) / 3.6e6
    ra = ra0 + (np.asarray(truth["pmra"], float)[keep] * dt
                + sigma_mas * rng.standard_normal(ra0.size)) / 3.6e6 / cosd
    return ra % 360.0, dec


def _side_stream(rng: np.random.Generator, entropy: np.ndarray) -> np.random.Generator:
    """An independent generator that leaves ``rng``'s own stream untouched.

    Columns added later draw from it, so adding them changes no value drawn from ``rng``
    (the same seed gives the same night as before). ``entropy`` (integers drawn earlier
    from ``rng``) seeds it when ``rng`` cannot spawn (no SeedSequence).
    """
    try:
        return rng.spawn(1)[0]
    except (TypeError, ValueError, AttributeError):
        return np.random.default_rng(np.asarray(entropy, dtype=np.uint64) % np.uint64(2**32))


def _write_table(tab: Table, path: Path) -> None:
    buf = io.StringIO()
    tab.write(buf, format="ascii.ecsv")
    path.write_text(buf.getvalue())


def write_reference_catalogs(truth_catalog: Table, outdir: str | Path, cfg: SceneConfig,
                             rng: np.random.Generator,
                             truth_dir: str | Path | None = None) -> dict[str, Path]:
    """Write Gaia-DR3-, PS1- and (NIR bands) 2MASS-like catalogues.

    * ``gaia_dr3.ecsv``: ``source_id, ra, dec, ra_error, dec_error, pmra,
      pmdec, pmra_error, pmdec_error, ref_epoch, phot_g_mean_mag``;
      positions at ``cfg.ref_epoch`` with 0.1 mas (G=17) to 1 mas (G=21)
      noise, G = r + colour term (0.1-0.2 mag scatter), G < 21, 2 % dropped.
    * ``ps1.ecsv`` (VizieR II/349): ``objID, RAJ2000, DEJ2000, gmag, e_gmag,
      gKmag, e_gKmag, ... ymag, e_ymag, yKmag, e_yKmag``; positions at epoch
      2012.0 with 15-50 mas noise; the ``cfg.band`` column is truth + Gaussian
      noise of ``e`` (0.01 at 17, 0.1 at 22); Kron magnitudes are the PSF
      magnitude + N(0, 0.02) (stars only: PSF - Kron passes the 0.1 mag
      point-source cut), drawn from a side stream so every other value is as
      without them; sources with band mag < 14 (saturated) or > 23 are
      omitted; other bands fainter than their limit are masked.
    * ``twomass.ecsv`` (VizieR II/246, only for J/H/K ``cfg.band``): Vega
      magnitudes (AB minus ``TWOMASS_VEGA_TO_AB``), positions at 2000.0.

    Parameters
    ----------
    truth_catalog : astropy.table.Table
        Output of :func:`~potpyri_core.simulate.scene.make_truth_catalog`.
    outdir : str or pathlib.Path
        Destination directory (created).
    cfg : SceneConfig
        Configuration (band, epochs).
    rng : numpy.random.Generator
        Random stream.
    truth_dir : str or pathlib.Path, optional
        If given, ``<catalog>_truth_ids.ecsv`` files mapping each catalogue
        row to the truth ``id`` are written there.

    Returns
    -------
    dict of str to pathlib.Path
        Keys ``"gaia"``, ``"ps1"`` and, for NIR bands, ``"twomass"``.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    truth = truth_catalog
    n = len(truth)
    band = canonical_band(cfg.band)
    colour = np.clip(rng.standard_normal(n), -2.5, 2.5)
    r_mag = np.asarray(truth["mag"], float) - band_minus_r(band, colour)
    star = ~np.asarray(truth["is_galaxy"], bool)

    def mag_in(key: str) -> np.ndarray:
        if key == band:
            return np.asarray(truth["mag"], float)
        return r_mag + band_minus_r(key, colour) + 0.03 * rng.standard_normal(n)

    paths: dict[str, Path] = {}
    ids: dict[str, np.ndarray] = {}

    # Gaia DR3
    gmag = mag_in("G") + 0.05 * rng.standard_normal(n)
    keep = star & (gmag < GAIA_LIMIT) & (gmag > 3.0) & (rng.uniform(size=n) > 0.02)
    sig = 0.08 + 0.9 * 10.0 ** (0.4 * (gmag[keep] - GAIA_LIMIT))
    ra, dec = _positions(truth, keep, cfg.ref_epoch, cfg.ref_epoch, sig, rng)
    sig_pm = 1.3 * sig
    gaia = Table()
    gaia["source_id"] = _unique_ids(rng, int(keep.sum()), 10**15)
    gaia["ra"], gaia["dec"] = ra, dec
    gaia["ra_error"], gaia["dec_error"] = sig, sig
    gaia["pmra"] = np.asarray(truth["pmra"], float)[keep] + sig_pm * rng.standard_normal(sig.size)
    gaia["pmdec"] = np.asarray(truth["pmdec"], float)[keep] + sig_pm * rng.standard_normal(sig.size)
    gaia["pmra_error"], gaia["pmdec_error"] = sig_pm, sig_pm
    gaia["ref_epoch"] = np.full(sig.size, cfg.ref_epoch)
    gaia["phot_g_mean_mag"] = gmag[keep]
    for col, unit in (("ra", "deg"), ("dec", "deg"), ("ra_error", "mas"), ("dec_error", "mas"),
                      ("pmra", "mas / yr"), ("pmdec", "mas / yr"), ("pmra_error", "mas / yr"),
                      ("pmdec_error", "mas / yr"), ("ref_epoch", "yr"), ("phot_g_mean_mag", "mag")):
        gaia[col].unit = unit
    gaia.meta["catalog"] = "gaia"
    paths["gaia"] = outdir / "gaia_dr3.ecsv"
    _write_table(gaia, paths["gaia"])
    ids["gaia"] = np.asarray(truth["id"])[keep]

    # Pan-STARRS1 DR1 (VizieR II/349)
    ps_bands = list(PS1_LIMITS)
    mags = {key: mag_in(key) for key in ps_bands}
    ref_key = band if band in PS1_LIMITS else "r"
    keep = (star & (mags[ref_key] >= PS1_SATURATION) & (mags[ref_key] < 23.0)
            & (rng.uniform(size=n) > 0.01))
    m_ref = mags[ref_key][keep]
    sig = np.hypot(15.0, 50.0 * 10.0 ** (0.4 * (m_ref - 22.0)))
    ra, dec = _positions(truth, keep, 2012.0, cfg.ref_epoch, sig, rng)
    ps1 = Table()
    ps1["objID"] = _unique_ids(rng, int(keep.sum()), 10**17)
    ps1["RAJ2000"], ps1["DEJ2000"] = ra, dec
    ps1["RAJ2000"].unit = ps1["DEJ2000"].unit = "deg"
    kron_rng = _side_stream(rng, ps1["objID"])
    for key in ps_bands:
        true_m = mags[key][keep]
        err = _mag_error(true_m, 0.01, 22.0)
        obs = true_m + err * rng.standard_normal(true_m.size)
        bad = true_m > PS1_LIMITS[key]
        ps1[f"{key}mag"] = MaskedColumn(obs, mask=bad, unit="mag")
        ps1[f"e_{key}mag"] = MaskedColumn(err, mask=bad, unit="mag")
        # Kron magnitudes of point sources: the PSF magnitude within PS1_KRON_SCATTER, so
        # PSF - Kron stays far below the 0.1 mag point-source cut.
        kron = obs + PS1_KRON_SCATTER * kron_rng.standard_normal(true_m.size)
        ps1[f"{key}Kmag"] = MaskedColumn(kron, mask=bad, unit="mag")
        ps1[f"e_{key}Kmag"] = MaskedColumn(np.hypot(err, PS1_KRON_SCATTER), mask=bad, unit="mag")
    ps1.meta["epoch"] = 2012.0
    if cfg.dec >= PS1_SOUTH_LIMIT_DEC:
        ps1.meta["catalog"] = "ps1"
    # south of PS1's limit the same survey-like table carries no identity: it stands for the
    # southern survey the instrument's settings name (a file without identity is their fallback)
    paths["ps1"] = outdir / "ps1.ecsv"
    _write_table(ps1, paths["ps1"])
    ids["ps1"] = np.asarray(truth["id"])[keep]

    # 2MASS (VizieR II/246), NIR bands only
    if band in TWOMASS_VEGA_TO_AB:
        vega = {key: mag_in(key) - TWOMASS_VEGA_TO_AB[key] for key in TWOMASS_VEGA_TO_AB}
        keep = star & (vega[band] < TWOMASS_LIMITS[band]) & (vega[band] > 9.0)
        tm = Table()
        ra, dec = _positions(truth, keep, 2000.0, cfg.ref_epoch,
                             np.full(int(keep.sum()), 70.0), rng)
        tm["RAJ2000"], tm["DEJ2000"] = ra, dec
        tm["RAJ2000"].unit = tm["DEJ2000"].unit = "deg"
        for key in TWOMASS_VEGA_TO_AB:
            true_m = vega[key][keep]
            err = _mag_error(true_m, 0.02, TWOMASS_SN10[key])
            obs = true_m + err * rng.standard_normal(true_m.size)
            bad = true_m > TWOMASS_LIMITS[key]
            tm[f"{key}mag"] = MaskedColumn(obs, mask=bad, unit="mag")
            tm[f"e_{key}mag"] = MaskedColumn(err, mask=bad, unit="mag")
        tm.meta["photometric_system"] = "Vega"
        tm.meta["catalog"] = "twomass"
        paths["twomass"] = outdir / "twomass.ecsv"
        _write_table(tm, paths["twomass"])
        ids["twomass"] = np.asarray(truth["id"])[keep]

    if truth_dir is not None:
        truth_dir = Path(truth_dir)
        truth_dir.mkdir(parents=True, exist_ok=True)
        for key, tid in ids.items():
            _write_table(Table({"row": np.arange(tid.size), "truth_id": tid}),
                         truth_dir / f"{paths[key].stem}_truth_ids.ecsv")
    return paths


__all__ = ["BANDS", "COLOUR_MODEL", "band_minus_r", "canonical_band", "write_reference_catalogs"]
