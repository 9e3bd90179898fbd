"""Driver that renders a whole night, packs it into raw files and writes the truth."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from .artifacts import DEAD_COLUMN_RESPONSE
from .fringes import ccd_columns
from .rawwrite import write_atomic, write_raw
from .refcat import write_reference_catalogs
from .scene import (
    TRUE_POSITION_ANGLE_DEG,
    Exposure,
    SceneConfig,
    frame_rng,
    make_detector,
    make_truth_catalog,
    psf_stamp_fraction,
    render_exposure,
)

FLUX_CONVENTION = (
    "Images are electrons. A source of magnitude m (AB, cfg.band) delivers "
    "10**(-0.4*(m - zeropoint)) * exptime e- in total for unit response; recorded "
    "image = Poisson((sky + fringes + sources) * flat + dark + hot columns) + cosmic rays, with the flat "
    "normalised to median 1 over non-gap pixels. The PSF is a pixel-integrated Moffat "
    "normalised to 1 over the infinite plane; psf_stamp_fraction gives the fraction kept "
    "inside the rendered stamp."
)


def _write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` atomically; an existing identical file is left, a different one is an error."""
    write_atomic(path, data)


def _hdul_bytes(hdul: fits.HDUList) -> bytes:
    buf = io.BytesIO()
    hdul.writeto(buf)
    return buf.getvalue()


def _table_bytes(tab: Table) -> bytes:
    buf = io.StringIO()
    tab.write(buf, format="ascii.ecsv")
    return buf.getvalue().encode()


def _mask_hdu(mask: np.ndarray, name: str) -> fits.CompImageHDU:
    return fits.CompImageHDU(mask.astype(np.uint8), name=name, compression_type="RICE_1")


def simulate_night(cfg: SceneConfig, outdir: str | Path,
                   pack: Callable[[Exposure], fits.HDUList],
                   name_for: Callable[[Exposure], str],
                   extra_truth: dict | None = None) -> dict[str, Path | list[Path] | dict]:
    """Render, pack and write all exposures of a night plus the truth.

    Exposures are rendered one at a time in the order biases, darks, flats,
    science; each gets an independent random stream derived from
    ``cfg.seed``, so the same configuration reproduces identical files.

    Parameters
    ----------
    cfg : SceneConfig
        Configuration.
    outdir : str or pathlib.Path
        Destination of the raw files; ``truth/`` and ``refcat/`` are created
        inside it.
    pack : callable
        ``pack(exposure) -> HDUList`` converting electrons into the raw
        instrument format.
    name_for : callable
        ``name_for(exposure) -> str`` giving the raw file name.
    extra_truth : dict, optional
        More entries for ``truth.json`` (e.g. ``ccd_regions`` of the simulated geometry).

    Returns
    -------
    dict
        ``raw`` (list of raw file paths), ``truth_json``, ``truth_catalog``,
        ``cr_masks``, ``satellite_mask``, ``flat_pattern`` and ``refcat``
        (dict from :func:`write_reference_catalogs`).

    Raises
    ------
    FileExistsError
        If a file to be written already exists with different content.
    ValueError
        If ``name_for`` returns the same name twice.
    """
    outdir = Path(outdir)
    truth_dir = outdir / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    truth = make_truth_catalog(cfg, np.random.default_rng([cfg.seed, 1]))
    det = make_detector(cfg)

    frames: list[dict] = []
    raw: list[Path] = []
    cr_hdus: list[fits.CompImageHDU] = []
    sat_hdus: list[fits.CompImageHDU] = []
    saturated: set[int] = set()
    for kind, count in (("bias", cfg.n_bias), ("dark", cfg.n_darks), ("flat", cfg.n_flats),
                        ("science", cfg.n_science)):
        for index in range(count):
            exp = render_exposure(cfg, kind, index, truth if kind == "science" else None,
                                  frame_rng(cfg, kind, index), detector=det)
            name = name_for(exp)
            path = outdir / name
            if path in raw:
                raise ValueError(f"name_for returned {name!r} twice")
            write_raw(path, _hdul_bytes(pack(exp)))  # compressed as the name says
            raw.append(path)
            rec = {"file": name, "kind": kind, "index": index, "exptime": exp.exptime,
                   "mjd": exp.mjd, "object": exp.object_name,
                   "sky_e_per_pix": exp.sky_e_per_pix, "fringe_e": exp.fringe_e,
                   "n_cr_pixels": int(exp.cr_mask.sum()) if exp.cr_mask is not None else 0}
            if kind == "science":
                rec.update(
                    dither_offset_arcsec=list(exp.dither_offset_arcsec),
                    true_wcs_header=exp.true_wcs.to_header(relax=True).tostring(sep="\n"),
                    header_wcs_header=exp.header_wcs.to_header().tostring(sep="\n"),
                    saturated_star_ids=exp.saturated_star_ids,
                    has_satellite=bool(exp.satellite_mask.any()))
                saturated.update(exp.saturated_star_ids)
                cr_hdus.append(_mask_hdu(exp.cr_mask, name))
                sat_hdus.append(_mask_hdu(exp.satellite_mask, name))
            frames.append(rec)
            del exp

    paths: dict[str, Path | list[Path] | dict] = {"raw": raw}
    paths["truth_catalog"] = truth_dir / "truth_catalog.ecsv"
    _write_bytes(paths["truth_catalog"], _table_bytes(truth))
    paths["cr_masks"] = truth_dir / "cr_masks.fits"
    _write_bytes(paths["cr_masks"], _hdul_bytes(fits.HDUList([fits.PrimaryHDU(), *cr_hdus])))
    paths["satellite_mask"] = truth_dir / "satellite_mask.fits"
    _write_bytes(paths["satellite_mask"],
                 _hdul_bytes(fits.HDUList([fits.PrimaryHDU(), *sat_hdus])))
    flat_hdr = fits.Header()
    flat_hdr["DEADCOLS"] = ",".join(str(c) for c in det.dead_columns)
    flat_hdr["COMMENT"] = "True flat-field response; median 1 over non-gap pixels."
    paths["flat_pattern"] = truth_dir / "flat_pattern.fits"
    _write_bytes(paths["flat_pattern"],
                 _hdul_bytes(fits.HDUList([fits.PrimaryHDU(det.flat, header=flat_hdr)])))
    if det.fringe is not None:
        paths["fringe_pattern"] = truth_dir / "fringe_pattern.fits"
        _write_bytes(paths["fringe_pattern"], _hdul_bytes(fringe_hdul(cfg, det.fringe)))
    paths["refcat"] = write_reference_catalogs(truth, outdir / "refcat", cfg,
                                               np.random.default_rng([cfg.seed, 3]),
                                               truth_dir=truth_dir)

    info = {
        "config": cfg.to_dict(),
        "band": cfg.band,
        "zeropoint": cfg.zeropoint,
        "flux_convention": FLUX_CONVENTION,
        "fwhm_arcsec": cfg.fwhm_arcsec,
        "fwhm_px": cfg.fwhm_px,
        "moffat_beta": cfg.moffat_beta,
        "moffat_alpha_px": cfg.moffat_alpha_px,
        "psf_stamp_fraction": psf_stamp_fraction(cfg),
        "sky_e_per_s_per_pix": cfg.sky_e_per_s_per_pix,
        "distortion": {"model": "x_true_offset = u * (1 + k3 * (u**2 + v**2)) about CRPIX "
                                "(SIP A_3_0=A_1_2=B_0_3=B_2_1=k3)",
                       "k3": cfg.k3, "corner_displacement_px": cfg.k3 * cfg.corner_radius_px**3},
        "true_position_angle_deg": TRUE_POSITION_ANGLE_DEG,
        "detector": {"dead_columns": det.dead_columns,
                     "dead_column_response": DEAD_COLUMN_RESPONSE,
                     "hot_columns_e": {str(k): v for k, v in det.hot_columns.items()},
                     "gap_columns": [list(g) for g in cfg.gap_columns]},
        **(extra_truth or {}),
        "frames": frames,
        "saturated_star_ids": sorted(saturated),
        "files": {k: (str(v) if isinstance(v, Path) else None) for k, v in paths.items()
                  if isinstance(v, Path)},
        "refcat_files": {k: str(v) for k, v in paths["refcat"].items()},
    }
    paths["truth_json"] = truth_dir / "truth.json"
    _write_bytes(paths["truth_json"], json.dumps(info, indent=1, allow_nan=False,
                                                 default=_json_default).encode())
    return paths


def fringe_hdul(cfg: SceneConfig, pattern: np.ndarray) -> fits.HDUList:
    """The true fringe pattern: the focal-plane grid (primary) and one extension per CCD
    (``CCD1``... with ``X0``, ``X1`` its columns); a science frame's fringe in e- is its
    ``fringe_e`` (truth.json) times the pattern."""
    header = fits.Header()
    header["FRNGAMP"] = (cfg.fringe_amplitude, "peak fringe amplitude / sky (night mean)")
    header["COMMENT"] = "Fringe pattern (-1..1), fixed on the detector; e- = fringe_e x pattern."
    hdus: list = [fits.PrimaryHDU(pattern, header=header)]
    for number, (x0, x1) in enumerate(ccd_columns(cfg), start=1):
        hdu = fits.ImageHDU(pattern[:, x0:x1], name=f"CCD{number}")
        hdu.header["X0"] = (x0, "first column on the focal-plane grid (0-based)")
        hdu.header["X1"] = (x1, "column after the last")
        hdus.append(hdu)
    return fits.HDUList(hdus)


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        value = obj.item()
        return None if isinstance(value, float) and not math.isfinite(value) else value
    raise TypeError(f"not JSON serialisable: {type(obj)}")


__all__ = ["FLUX_CONVENTION", "simulate_night"]
