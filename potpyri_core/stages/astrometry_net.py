"""astrometry.net backend: ``solve-field`` on our own star list, and index files for a field.

``solve-field`` runs on an xylist of the frame's detections (no image, no Source Extractor),
hinted by the starting pointing and pixel scale, against index files that
:func:`build_index` makes with ``build-astrometry-index`` from a Gaia table of the field, so
a site solves offline without the all-sky index download.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS, FITSFixedWarning


class SolveFieldError(RuntimeError):
    """solve-field or build-astrometry-index is missing, failed or found no solution."""


def available() -> bool:
    """True when both ``solve-field`` and ``build-astrometry-index`` are on the PATH."""
    return shutil.which("solve-field") is not None and shutil.which("build-astrometry-index") is not None


def write_xylist(path: Path, xy: np.ndarray, flux: np.ndarray, shape: tuple[int, int]) -> None:
    """Write detections as an astrometry.net xylist (FITS table ``X``, ``Y`` 1-based, ``FLUX``)."""
    table = Table({"X": xy[:, 0] + 1.0, "Y": xy[:, 1] + 1.0, "FLUX": np.asarray(flux, float)})
    hdu = fits.table_to_hdu(table)
    hdu.header["IMAGEW"] = shape[1]
    hdu.header["IMAGEH"] = shape[0]
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)


def solve(xy: np.ndarray, flux: np.ndarray, shape: tuple[int, int], start: WCS, index_dir: str | Path | None,
          scale_tolerance: float, max_offset_arcmin: float, timeout: float) -> WCS:
    """Blind solution with ``solve-field``.

    Parameters
    ----------
    xy, flux : ndarray
        Detections (0-based pixels) and fluxes.
    shape : tuple of int
        Frame shape ``(ny, nx)``.
    start : astropy.wcs.WCS
        Starting WCS: the pointing hint and the pixel scale.
    index_dir : str or Path or None
        Folder of index files (:func:`build_index`).
    scale_tolerance : float
        Fractional range of the pixel scale searched.
    max_offset_arcmin : float
        Search radius about the pointing (arcmin), beyond the field's half-diagonal.
    timeout : float
        CPU seconds allowed.

    Returns
    -------
    astropy.wcs.WCS
        TAN WCS found by solve-field (reference pixel at the frame centre).

    Raises
    ------
    SolveFieldError
        When the programs or the indexes are missing or no solution is found.
    """
    if index_dir is None:
        raise SolveFieldError("no index folder given (build one with 'potpyri index build RA DEC RADIUS')")
    index_dir = Path(index_dir)
    if not list(index_dir.glob("*.fits")):
        raise SolveFieldError(f"no index files in {index_dir}")
    if shutil.which("solve-field") is None:
        raise SolveFieldError("solve-field is not installed (Debian package astrometry.net)")
    ny, nx = shape
    cd = start.wcs.cd if start.wcs.has_cd() else np.diag(start.wcs.cdelt) @ start.wcs.get_pc()
    scale = math.sqrt(abs(np.linalg.det(cd))) * 3600.0
    centre = start.all_pix2world([[(nx - 1) / 2.0, (ny - 1) / 2.0]], 0)[0]
    radius = math.hypot(nx, ny) / 2.0 * scale / 3600.0 + max_offset_arcmin / 60.0
    with tempfile.TemporaryDirectory(prefix="potpyri-solve-") as tmp:
        work = Path(tmp)
        write_xylist(work / "stars.xyls", xy, flux, shape)
        (work / "astrometry.cfg").write_text(f"add_path {index_dir.resolve()}\nautoindex\n")
        command = [
            "solve-field", str(work / "stars.xyls"), "--config", str(work / "astrometry.cfg"), "--dir", str(work),
            "--no-plots", "--overwrite", "--x-column", "X", "--y-column", "Y", "--sort-column", "FLUX",
            "--width", str(nx), "--height", str(ny), "--scale-units", "arcsecperpix",
            "--scale-low", f"{scale * (1 - scale_tolerance):.6f}", "--scale-high", f"{scale * (1 + scale_tolerance):.6f}",
            "--ra", f"{centre[0]:.6f}", "--dec", f"{centre[1]:.6f}", "--radius", f"{radius:.4f}",
            "--crpix-center", "--no-tweak", "--cpulimit", str(math.ceil(timeout)), "--new-fits", "none",
            "--odds-to-solve", "1e6", "--odds-to-tune-up", "1e4", "--objs", "60",
            "--match", "none", "--rdls", "none", "--corr", "none", "--index-xyls", "none", "--wcs", str(work / "solution.wcs"),
        ]
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 30, check=False)
        except subprocess.TimeoutExpired as exc:
            raise SolveFieldError(f"solve-field did not finish in {timeout + 30:.0f} s") from exc
        wcs_path = work / "solution.wcs"
        if run.returncode != 0 or not wcs_path.exists():
            tail = (run.stderr.strip() or run.stdout.strip()).splitlines()[-1:] or ["no output"]
            raise SolveFieldError(f"solve-field found no solution (exit {run.returncode}: {tail[0]})")
        header = fits.getheader(wcs_path)
    with warnings.catch_warnings():  # the .wcs file is a header without pixels
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header, relax=True)
    wcs.pixel_shape = (nx, ny)
    return wcs


def quad_scales(field_arcmin: float) -> list[tuple[float, float]]:
    """Quad-size ranges (arcmin) of the indexes for a field: steps of sqrt(2) from 1/6 of the
    field to the field size."""
    lo = max(field_arcmin / 6.0, 0.2)
    scales = []
    while lo < field_arcmin:
        scales.append((lo, lo * math.sqrt(2.0)))
        lo *= math.sqrt(2.0)
    return scales


def build_index(ra: np.ndarray, dec: np.ndarray, mag: np.ndarray, out_dir: str | Path, field_arcmin: float,
                unique_id: int = 9000, jitter_arcsec: float = 0.05) -> list[Path]:
    """Build astrometry.net index files for a field from a catalog (e.g. Gaia DR3).

    Parameters
    ----------
    ra, dec, mag : ndarray
        Catalog positions (deg, at the epoch the frames will be solved for) and magnitudes.
    out_dir : str or Path
        Where the index files go (created).
    field_arcmin : float
        Side of the frames to solve (arcmin); sets the quad sizes.
    unique_id : int
        First index id (one per quad scale).
    jitter_arcsec : float
        Positional error of the catalog.

    Returns
    -------
    list of Path
        The index files written.

    Raises
    ------
    SolveFieldError
        When ``build-astrometry-index`` is missing or fails.
    """
    if shutil.which("build-astrometry-index") is None:
        raise SolveFieldError("build-astrometry-index is not installed (Debian package astrometry.net)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="potpyri-index-") as tmp:
        catalog = Path(tmp) / "catalog.fits"
        good = np.isfinite(ra) & np.isfinite(dec)
        table = Table({"RA": np.asarray(ra, float)[good], "DEC": np.asarray(dec, float)[good],
                       "MAG": np.nan_to_num(np.asarray(mag, float)[good], nan=99.0)})
        table.write(catalog, overwrite=True)
        for k, (lo, hi) in enumerate(quad_scales(field_arcmin)):
            nside = max(round(3517.0 / lo), 1)
            path = out_dir / f"index-{unique_id + k}.fits"
            command = ["build-astrometry-index", "-i", str(catalog), "-o", str(path), "-N", str(nside),
                       "-l", f"{lo:.4f}", "-u", f"{hi:.4f}", "-S", "MAG", "-A", "RA", "-D", "DEC", "-E",
                       "-I", str(unique_id + k), "-j", f"{jitter_arcsec:g}", "-n", "20", "-p", "32", "-M",
                       "-t", tmp]
            run = subprocess.run(command, capture_output=True, text=True, check=False)
            output = run.stderr + run.stdout
            if "did not create any quads" in output.lower():
                path.unlink(missing_ok=True)  # too few stars at this scale: the other scales remain
                continue
            if run.returncode != 0 or not path.exists():
                tail = output.strip().splitlines()[-1:] or ["no output"]
                raise SolveFieldError(f"build-astrometry-index failed for quads {lo:.2f}-{hi:.2f}': {tail[0]}")
            written.append(path)
    if not written:
        raise SolveFieldError(f"no index built: {len(table)} catalog stars make no quads of"
                              f" {field_arcmin / 6:.2f}-{field_arcmin:.2f}'")
    return written
