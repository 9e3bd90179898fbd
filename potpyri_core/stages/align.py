"""Frame-to-frame alignment of the frames of one target with all their detected sources.

A sparse field may hold 8 Gaia stars but hundreds of detected sources; after each frame is
solved against the catalog, every frame's WCS is refined against one reference frame (the
one with the most catalog matches): its sources, put on the sky by the reference WCS, are
the positions each other frame is fitted to (a linear map on top of that frame's distortion,
:func:`~potpyri_core.stages.wcsfit.fit_wcs`). The frames then stack as sharply as the
sources allow, in the reference frame's absolute (catalog) system. A frame that failed its
catalog solution is matched blind to the reference frame's sources (triangles, any rotation
and parity) and passes when that alignment passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from potpyri_core.frames import Frame
from potpyri_core.settings import InstrumentSettings
from potpyri_core.stages.astrometry import (
    AstrometryParams,
    Solution,
    catalog_blind,
    centred_wcs,
    frame_binning,
    solution_header,
)
from potpyri_core.stages.header_wcs import WCS_KEY_PREFIXES
from potpyri_core.stages.patternmatch import NoMatchError
from potpyri_core.stages.wcsfit import FitError, FitResult, fit_wcs

STARS_EXTENSION = "ASTSTARS"
"""Extension of a workspace frame holding the detections the astrometry used."""


@dataclass
class Alignment:
    """Outcome of aligning one frame to the reference frame."""

    index: int
    fit: FitResult | None
    message: str


def align_frames(stars: list[Table], wcss: list[WCS | None], shapes: list[tuple[int, int]], reference: int,
                 params: AstrometryParams, starts: list[WCS] | None = None) -> list[Alignment]:
    """Refine the WCS of every frame against the sources of a reference frame.

    Parameters
    ----------
    stars : list of astropy.table.Table
        Detections of each frame (``x``, ``y``, ``flux``; 0-based pixels).
    wcss : list of astropy.wcs.WCS or None
        Each frame's solved WCS (None: its catalog solution failed).
    shapes : list of tuple of int
        Frame shapes.
    reference : int
        Index of the reference frame (must have a WCS).
    params : AstrometryParams
        ``align_match_radius_arcsec``, ``align_min_matched`` and the blind-match ranges.
    starts : list of astropy.wcs.WCS, optional
        Starting WCSs of the frames without a solution (for the blind match).

    Returns
    -------
    list of Alignment
        One per frame; the reference frame's ``fit`` is None.
    """
    ref_wcs = wcss[reference]
    if ref_wcs is None:
        raise ValueError("the reference frame has no WCS")
    ref_xy = _xy(stars[reference])
    sky = ref_wcs.all_pix2world(ref_xy, 0)
    ref_ra, ref_dec = sky[:, 0], sky[:, 1]
    ref_flux = np.asarray(stars[reference]["flux"], float)
    out = []
    for i, (table, wcs, shape) in enumerate(zip(stars, wcss, shapes, strict=True)):
        if i == reference:
            out.append(Alignment(i, None, "reference frame"))
            continue
        xy = _xy(table)
        try:
            start = wcs
            how = "aligned"
            if start is None:
                if starts is None or starts[i] is None:
                    raise FitError("no solution and no starting WCS")
                start, _ = catalog_blind(xy, np.asarray(table["flux"], float), ref_ra, ref_dec, -ref_flux,
                                         starts[i], shape, params)
                how = "blind-aligned"
            fit = fit_wcs(start, xy, ref_ra, ref_dec, shape, params.align_match_radius_arcsec,
                          params.align_min_matched, affine_min=params.align_min_matched, sip_min={},
                          clip_sigma=params.clip_sigma, min_radius=params.min_match_radius_arcsec,
                          iterations=params.iterations, max_model="affine")
            if not fit.rms <= params.max_rms_arcsec:
                raise FitError(f"alignment RMS {fit.rms:.3f}\" exceeds {params.max_rms_arcsec}\"")
            out.append(Alignment(i, fit, f"{how}: {len(fit.source_index)} sources, rms {fit.rms:.3f}\""))
        except (FitError, NoMatchError) as exc:
            out.append(Alignment(i, None, f"not aligned: {exc}"))
    return out


def _xy(table: Table) -> np.ndarray:
    return np.column_stack([np.asarray(table["x"], float), np.asarray(table["y"], float)])


def stars_hdu(stars: Table) -> fits.BinTableHDU:
    """The detections as the workspace extension :data:`STARS_EXTENSION`."""
    hdu = fits.table_to_hdu(Table({c: np.asarray(stars[c], float) for c in ("x", "y", "flux")}))
    hdu.name = STARS_EXTENSION
    return hdu


def align_workspace(paths: list[Path], instrument: InstrumentSettings, params: AstrometryParams,
                    write: Callable[[fits.HDUList, Path], None],
                    headers: list[fits.Header] | None = None) -> list[tuple[str, bool, str]]:
    """Align the solved workspace frames of one target and rewrite their WCS.

    Frames need the :data:`STARS_EXTENSION` written by the astrometry step; their ``ASTSTAT``
    card says whether the catalog solution passed. A frame that fails alignment keeps its
    catalog solution; a frame without one that aligns blind is marked as passing.

    Parameters
    ----------
    paths : list of Path
        Workspace frames of one target and filter.
    instrument : InstrumentSettings
        For the starting WCS of unsolved frames.
    params : AstrometryParams
        Step parameters.
    write : callable
        ``write(hdul, path)`` writes a file atomically.
    headers : list of fits.Header, optional
        The frames' headers to align from (default the files' own): a re-run passes the
        astrometry stage's headers, so it never starts from an earlier alignment.

    Returns
    -------
    list of tuple
        ``(file name, ok, message)`` per frame.
    """
    headers = headers if headers is not None else [fits.getheader(p) for p in paths]
    usable = [i for i, p in enumerate(paths) if STARS_EXTENSION in _extensions(p)]
    if len(usable) < 2:
        return []
    stars = [Table.read(paths[i], hdu=STARS_EXTENSION) for i in usable]
    passed = [headers[i].get("ASTSTAT") == "PASS" for i in usable]
    if not any(passed):
        return []
    wcss = [WCS(headers[i], relax=True) if ok else None for i, ok in zip(usable, passed, strict=True)]
    shapes = [(int(headers[i]["NAXIS2"]), int(headers[i]["NAXIS1"])) for i in usable]
    counts = [int(headers[i].get("ASTNMAT", 0)) if ok else -1 for i, ok in zip(usable, passed, strict=True)]
    reference = int(np.argmax(counts))
    starts = [None if ok else centred_wcs(WCS(headers[i], relax=True), instrument, shapes[k],
                                          frame_binning(headers[i]))
              for k, (i, ok) in enumerate(zip(usable, passed, strict=True))]
    results = []
    for alignment in align_frames(stars, wcss, shapes, reference, params, starts):
        path = paths[usable[alignment.index]]
        if alignment.fit is None:
            results.append((path.name, alignment.index == reference or passed[alignment.index], alignment.message))
            continue
        frame = Frame.from_file(path)
        frame.header = header = headers[usable[alignment.index]].copy()
        previous = header.get("ASTBACK", "")
        solution = Solution(wcs=alignment.fit.wcs, n_matched=int(header.get("ASTNMAT", 0)),
                            rms_ra=float(header.get("RADISP", np.std(alignment.fit.residuals[:, 0]))),
                            rms_dec=float(header.get("DEDISP", np.std(alignment.fit.residuals[:, 1]))),
                            backend=previous if passed[alignment.index] else "frame",
                            model=str(header.get("ASTMODEL", alignment.fit.model)), false_alarm=0.0)
        for key in list(header.keys()):
            if key.startswith(WCS_KEY_PREFIXES):
                del header[key]
        header.update(solution_header(solution))
        header["ALIGNREF"] = (paths[usable[reference]].name, "frame the WCS was aligned to")
        header["ALIGNNUM"] = (len(alignment.fit.source_index), "sources matched to the reference frame")
        header["ALIGNRMS"] = (alignment.fit.rms, "alignment RMS (arcsec)")
        write(frame.to_hdul([stars_hdu(stars[alignment.index])]), path)
        results.append((path.name, True, alignment.message))
    return results


def _extensions(path: Path) -> list[str]:
    with fits.open(path) as hdul:
        return [h.name for h in hdul]
