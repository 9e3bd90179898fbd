"""The QA report of a run: ``red/qa/index.html`` and one page per target.

Self-contained (inline CSS, PNG files beside the pages, relative links), so it opens from
disk. Per target: the stack preview (zscale, unusable pixels in red), the ePSF, the zero-point
fit (catalog against instrumental magnitude, residuals against colour), one astrometric
residual vector map per frame (its stars matched to the astrometric catalog through its final
WCS, :mod:`~potpyri_core.stages.wcsresiduals`) and a per-frame
table (seeing, sky, transparency, solution RMS, stars used, used in the stack or why not).
The index links every target and lists the run's warnings (every failed or BAD item).
"""

from __future__ import annotations

import html
import logging
import time
import traceback
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time
from astropy.visualization import ZScaleInterval
from astropy.wcs import WCS

from potpyri_core.catalogs.cache import CatalogUnavailableError
from potpyri_core.catalogs.columns import at_epoch
from potpyri_core.frames import Frame
from potpyri_core.maskbits import UNUSABLE
from potpyri_core.progress import progress
from potpyri_core.stages import colourterms, wcsresiduals
from potpyri_core.stages.sourcecat import SourceFlag
from potpyri_core.uptodate import card, signature

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from potpyri_core.pipeline import Pipeline

log = logging.getLogger("potpyri")

PREVIEW_WIDTH = 1000
"""Largest width (pixels) of a stack preview."""
CSS = ("body{font-family:sans-serif;margin:1.5em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0}"
       "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}th{background:#eee}"
       ".bad{color:#b00}.figs img{max-width:100%;margin:4px;border:1px solid #ccc}img.thumb{width:220px}"
       "img.preview{width:700px}")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig: Figure, path: Path) -> str:
    fig.savefig(path)
    return path.name


def preview_png(data: np.ndarray, mask: np.ndarray, path: Path) -> str:
    """Block-averaged zscale preview of a stack; blocks mostly unusable are red."""
    from matplotlib.image import imsave
    block = max(1, int(np.ceil(data.shape[1] / PREVIEW_WIDTH)))
    ny, nx = (data.shape[0] // block) * block, (data.shape[1] // block) * block
    unusable = ((mask[:ny, :nx] & UNUSABLE) > 0).reshape(ny // block, block, nx // block, block).mean(axis=(1, 3))
    clean = np.where((mask & UNUSABLE) > 0, np.nan, data)[:ny, :nx].reshape(ny // block, block, nx // block, block)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-masked blocks
        small = np.nanmean(clean, axis=(1, 3))
    finite = small[np.isfinite(small)]
    low, high = ZScaleInterval().get_limits(finite) if finite.size else (0.0, 1.0)
    grey = np.clip((np.nan_to_num(small, nan=low) - low) / max(high - low, 1e-12), 0, 1)
    rgb = np.dstack([grey, grey, grey])
    rgb[unusable > 0.5] = (0.85, 0.1, 0.1)
    imsave(path, rgb[::-1], format="png")
    return path.name


def psf_png(psf: np.ndarray, fwhm: float, path: Path) -> str:
    """The ePSF on a logarithmic stretch."""
    fig = _figure(4, 3.6)
    ax = fig.add_subplot()
    shown = ax.imshow(np.log10(np.clip(psf / psf.max(), 1e-4, None)), origin="lower", cmap="viridis")
    fig.colorbar(shown, ax=ax, label="log10(PSF / peak)")
    ax.set_title(f"ePSF (oversampled x2), Moffat FWHM {fwhm:.2f} px", fontsize=9)
    return _save(fig, path)


def zeropoint_png(sources: Table, reference: Table, band: str, header: fits.Header, params: Any, path: Path) -> str:
    """Catalog against instrumental magnitudes, and residuals against colour."""
    column = f"mag_{band}"
    use = (sources["flags"] & int(SourceFlag.MASKED | SourceFlag.SATURATED)) == 0
    use &= (sources["snr"] >= params.sn_min) & (sources["snr"] <= params.sn_max) & np.isfinite(sources["mag_inst"])
    src = sources[use]
    ref = reference[np.isfinite(np.asarray(reference[column], float))]
    idx, sep, _ = SkyCoord(src["ra"], src["dec"], unit="deg").match_to_catalog_sky(
        SkyCoord(ref["ra"], ref["dec"], unit="deg"))
    ok = sep.arcsec < params.match_arcsec
    inst = np.asarray(src["mag_inst"], float)[ok]
    cat = np.asarray(ref[column], float)[idx[ok]]
    zp = float(header["ZPTMAG"])
    residual = cat - inst - zp
    others = [c for c in ref.colnames if c.startswith("mag_") and c != column]
    if header.get("ZPTCOLOR", "none") != "none":  # the colour of the zero point's colour term
        others = [f"mag_{b}" for b in str(header["ZPTCOLOR"]).split("-")]
    fig = _figure(10, 4)
    left, right = fig.subplots(1, 2)
    left.scatter(inst, cat, s=6)
    grid = np.linspace(inst.min(), inst.max(), 2) if inst.size else np.zeros(2)
    left.plot(grid, grid + zp, "r-", label=f"ZPTMAG {zp:.3f} ± {header['ZPTMUCER']:.3f} ({header['ZPTNSTAR']} stars)")
    left.set_xlabel("instrumental mag (-2.5 log10 e-/s)")
    left.set_ylabel(f"catalog {band} (AB)")
    left.legend(loc="upper left")
    if len(others) == 2:
        colour = np.asarray(ref[others[0]], float)[idx[ok]] - np.asarray(ref[others[1]], float)[idx[ok]]
        right.scatter(colour, residual, s=6)
        right.set_xlabel(f"{others[0][4:]} - {others[1][4:]} (catalog; term {header.get('ZPTCTERM', 0.0):.3f})")
    elif others:
        colour = np.asarray(ref[others[0]], float)[idx[ok]] - cat
        right.scatter(colour, residual, s=6)
        right.set_xlabel(f"{others[0][4:]} - {band} (catalog)")
    else:
        right.scatter(cat, residual, s=6)
        right.set_xlabel(f"catalog {band} (no colour in the catalog)")
    right.axhline(0.0, color="r")
    right.set_ylim(-0.3, 0.3)
    right.set_ylabel("catalog - instrumental - ZPTMAG (mag)")
    fig.suptitle(f"zero point against {header.get('ZPTCAT', '?')}")
    return _save(fig, path)


def residual_png(table: Table, shape: tuple[int, int], title: str, path: Path) -> str:
    """Astrometric residual vectors (measured minus catalog) across a frame."""
    fig = _figure(5, 4)
    ax = fig.add_subplot()
    if len(table):
        ax.quiver(table["x"], table["y"], table["dra"], table["ddec"], angles="uv", scale_units="inches",
                  scale=0.1, width=0.003)
    ax.set_xlim(0, shape[1])
    ax.set_ylim(0, shape[0])
    ax.set_aspect("equal")
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    ax.set_title(f"{title}\narrows: measured - catalog, 1 inch = 0.1\" (E, N)", fontsize=9)
    return _save(fig, path)


def residuals_job(args: tuple[Path, Table, float]) -> Table:
    """Stars of one workspace frame matched to the astrometric catalog through its final WCS
    (:func:`~potpyri_core.stages.wcsresiduals.residual_table`), the catalog at its epoch."""
    path, reference, fwhm_init = args
    frame = Frame.from_file(path)
    at_obs = reference.copy(copy_data=False)
    at_obs["ra"], at_obs["dec"] = at_epoch(reference, Time(float(frame.header.get("MJD-OBS", 51544.5)),
                                                           format="mjd").jyear)
    return wcsresiduals.residual_table(frame, frame.wcs, at_obs, fwhm_init)


def _residuals(p: Pipeline, paths: list[Path]) -> dict[Path, Table]:
    """Residual tables of the frames that exist (none without an astrometric catalog)."""
    try:
        catalog = p.reference_catalog()
        reference = catalog.astrometric() if catalog is not None else None
    except CatalogUnavailableError as exc:
        log.warning("qa: no astrometric residual maps: %s", exc)
        return {}
    if reference is None:
        return {}
    existing = [path for path in paths if path.exists()]
    tables = p.map(residuals_job, [(path, reference, p.params.astrometry.fwhm_init) for path in existing],
                   "qa residuals")
    return dict(zip(existing, tables, strict=True))


def frame_rows(p: Pipeline, group: Table, used: set[str], qa_dir: Path, stem: str) -> tuple[list[dict], list[str]]:
    """Per-frame facts of one target, and the residual-map images written."""
    rows, images = [], []
    failures = {r.item: f"{r.status} {r.message}" for r in p.summary.set_aside}
    zps = {}
    residuals = _residuals(p, [p.workspace_path(str(row["File"])) for row in group])
    for k, row in enumerate(group):
        name = str(row["File"])
        path = p.workspace_path(name)
        facts: dict[str, Any] = {"file": name}
        why = next((msg for item, msg in failures.items() if name in item), "")
        if not path.exists():
            facts["status"] = f"dropped: {why or 'not calibrated'}"
            rows.append(facts)
            continue
        with fits.open(path) as hdul:
            header = hdul[0].header
            exptime = float(header.get("EXPTIME", 1.0))
            scale = float(np.sqrt(abs(np.linalg.det(WCS(header).celestial.pixel_scale_matrix)))) * 3600.0
            facts.update(sky=header.get("SKYLEVEL"), exptime=exptime, rms=(header.get("RADISP"), header.get("DEDISP")),
                         nstars=header.get("ASTNMAT"))
            if path in residuals:
                table = residuals[path]
                facts["seeing"] = float(table.meta["FWHM"]) * scale
                good = (table["flux"] > 0) & np.isfinite(table["mag_ref"])
                if good.sum() >= 3:
                    zps[name] = float(np.median(table["mag_ref"][good] + 2.5 * np.log10(table["flux"][good] / exptime)))
                images.append(residual_png(table, hdul[0].data.shape, f"{name}: {len(table)} stars, RMS "
                                           f"{facts['rms'][0] or 0:.3f}/{facts['rms'][1] or 0:.3f}\"",
                                           qa_dir / f"{stem}.astro{k + 1}.png"))
        facts["status"] = "used" if name in used else f"dropped: {why or 'not in the stack'}"
        rows.append(facts)
    best = max(zps.values()) if zps else None
    for facts in rows:
        if facts["file"] in zps:
            facts["transparency"] = 10 ** (-0.4 * (best - zps[facts["file"]]))
    return rows, images


def _num(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float, np.floating)) and np.isfinite(value) else "–"


def frame_table_html(rows: list[dict]) -> str:
    """The per-frame table."""
    out = [("<table><tr><th>frame</th><th>seeing (\")</th><th>sky (e-/pix)</th><th>transparency</th>"
           "<th>WCS RMS RA/Dec (\")</th><th>stars used</th><th>stack</th></tr>")]
    for r in rows:
        rms = r.get("rms", (None, None))
        cls = "" if r["status"] == "used" else " class='bad'"
        out.append(f"<tr><td>{html.escape(r['file'])}</td><td>{_num(r.get('seeing'), '.2f')}</td>"
                   f"<td>{_num(r.get('sky'), '.0f')}</td><td>{_num(r.get('transparency'), '.3f')}</td>"
                   f"<td>{_num(rms[0], '.3f')} / {_num(rms[1], '.3f')}</td><td>{_num(r.get('nstars'), 'd')}</td>"
                   f"<td{cls}>{html.escape(r['status'])}</td></tr>")
    return "\n".join([*out, "</table>"])


HEADLINE = (("SEEING", "seeing (\")", ".2f"), ("PSFFWHM", "ePSF FWHM (px)", ".2f"), ("ZPTMAG", "ZPTMAG (AB)", ".3f"),
            ("ZPTMUCER", "ZP uncertainty", ".3f"), ("ZPTNSTAR", "ZP stars", "d"), ("M5SIGMA", "M5SIGMA (analytic)", ".2f"),
            ("M5INJ", "M5INJ (injection S/N 5)", ".2f"), ("MC50INJ", "MC50INJ (50% complete)", ".2f"),
            ("NSOURCE", "catalog rows", "d"))
"""Stack header cards shown at the top of a target's page: card, label, format."""


def target_page(p: Pipeline, targtype: str, group: Table, qa_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Write one target's page and images; return the page and its headline numbers."""
    path = p.stack_path(group)
    stem = path.name.removesuffix(".fits")
    with fits.open(path) as hdul:
        header = hdul["SCI"].header.copy()
        images = [preview_png(hdul["SCI"].data, hdul["MASK"].data, qa_dir / f"{stem}.preview.png")]
        used = {str(f) for f in hdul["PROVENANCE"].data["file"]} if "PROVENANCE" in hdul else set()
        if "APPPHOT" in hdul:
            header["NSOURCE"] = hdul["APPPHOT"].header.get("NSOURCE", len(hdul["APPPHOT"].data))
        notes = []
        if "PSF" in hdul:
            images.append(psf_png(hdul["PSF"].data, float(hdul["PSF"].header.get("PSFFWHM", np.nan)),
                                  qa_dir / f"{stem}.psf.png"))
        else:
            notes.append("no PSF photometry (no ePSF)")
        sources = Table(hdul["APPPHOT"].data) if "APPPHOT" in hdul else None
    band = str(group[0]["Filter"])
    if sources is not None and "ZPTMAG" in header:
        try:
            catalog = p.reference_catalog()
            reference = catalog.photometric(band, p.instrument.zeropoint.vega_to_ab) if catalog else None
            if reference is not None:
                reference = colourterms.in_filter_system(reference, band, colourterms.ColourTerm.from_header(header, band))
                images.append(zeropoint_png(sources, reference, band, header, p.params.photometry,
                                            qa_dir / f"{stem}.zp.png"))
        except Exception as exc:
            log.debug(traceback.format_exc())
            notes.append(f"no zero-point plot: {exc}")
    else:
        notes.append("no zero point")
    frames, maps = frame_rows(p, group, used, qa_dir, stem)
    numbers = {card: header.get(card) for card, _, _ in HEADLINE}
    head = "".join(f"<tr><th>{label}</th><td>{_num(header.get(card), fmt)}</td></tr>" for card, label, fmt in HEADLINE)
    body = [(f"<h1>{html.escape(targtype)}</h1><p><a href='index.html'>all targets</a> · stack "
            f"<code>{html.escape(path.name)}</code></p>"), f"<table>{head}</table>",
            *(f"<p class='bad'>{html.escape(n)}</p>" for n in notes),
            "<h2>Stack, ePSF, zero point</h2><div class='figs'>",
            *(f"<img class='{'preview' if k == 0 else 'plot'}' src='{html.escape(i)}' alt='{html.escape(i)}'>"
              for k, i in enumerate(images)), "</div>",
            "<h2>Frames</h2>", frame_table_html(frames),
            "<h2>Astrometric residuals per frame (measured - catalog)</h2><div class='figs'>",
            *(f"<img src='{html.escape(i)}' alt='{html.escape(i)}'>" for i in maps), "</div>"]
    page = qa_dir / f"{stem}.html"
    page.write_text(_html(targtype, body))
    numbers.update(preview=images[0], page=page.name, frames=len(frames),
                   dropped=sum(f["status"] != "used" for f in frames))
    return page, numbers


def _html(title: str, body: list[str], head: str = "") -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}<title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_index(p: Pipeline, qa_dir: Path, targets: list[tuple[str, dict[str, Any]]], key: str) -> Path:
    """``index.html``: every target with its numbers, then every warning of the run; ``key``
    (:func:`report_key`) is kept in a meta element."""
    rows = [("<table><tr><th>target</th><th>preview</th><th>seeing (\")</th><th>ZPTMAG</th><th>M5SIGMA</th>"
            "<th>M5INJ</th><th>frames (dropped)</th></tr>")]
    for name, n in targets:
        rows.append(f"<tr><td><a href='{html.escape(n['page'])}'>{html.escape(name)}</a></td>"
                    f"<td><a href='{html.escape(n['page'])}'><img class='thumb' src='{html.escape(n['preview'])}' "
                    f"alt='preview of {html.escape(name)}'></a></td><td>{_num(n.get('SEEING'), '.2f')}</td>"
                    f"<td>{_num(n.get('ZPTMAG'), '.3f')}</td><td>{_num(n.get('M5SIGMA'), '.2f')}</td>"
                    f"<td>{_num(n.get('M5INJ'), '.2f')}</td><td>{n['frames']} ({n['dropped']})</td></tr>")
    rows.append("</table>")
    failures = p.summary.set_aside
    warnings = ["<h2>Warnings</h2>", "<p>none</p>" if not failures else "<ul>",
                *(f"<li class='bad'>{html.escape(r.stage)} {html.escape(r.item)}: {html.escape(r.status)} "
                  f"{html.escape(r.message)}</li>" for r in failures), "</ul>" if failures else ""]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    body = [f"<h1>{html.escape(p.instrument.name)} {html.escape(p.data_path.name)}: QA</h1>",
            f"<p>{len(targets)} target(s); made {stamp}</p>", *rows, *warnings]
    index = qa_dir / "index.html"
    index.write_text(_html(f"QA {p.data_path.name}", body, f"<meta name='potpyri-qakey' content='{key}'>"))
    return index


def report_key(p: Pipeline) -> str:
    """Signature of what the report shows: the stacks' and frames' signature cards and the
    run's failures (an unchanged night is not drawn again)."""
    stacks = [[card(p.stack_path(g), k) for k in ("STKKEY", "PHOKEY")] for g in p.science_groups().values()]
    frames = [card(p.workspace_path(r["File"]), "ASTKEY") for r in p.rows("SCIENCE")]
    return signature("qa", stacks, frames, [(r.stage, r.item, r.status, r.message) for r in p.summary.set_aside])


def _target(p: Pipeline, targtype: str, group: Table, qa_dir: Path) -> dict[str, Any] | None:
    """One target's page, recorded in the summary; its headline numbers (None if it failed)."""
    start = time.perf_counter()
    if not p.stack_path(group).exists():
        p.record(targtype, False, 0.0, "no stack (stack stage failed or not run): no QA page")
        return None
    try:
        page, numbers = target_page(p, targtype, group, qa_dir)
    except Exception as exc:
        log.debug(traceback.format_exc())
        p.record(targtype, False, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
        return None
    p.record(page.name, True, time.perf_counter() - start, f"{numbers['frames']} frames")
    return numbers


def run_qa(p: Pipeline) -> None:
    """Write the QA report of the run (``red/qa``): one page per target and the index."""
    qa_dir = p.red / "qa"
    qa_dir.mkdir(parents=True, exist_ok=True)
    key = report_key(p)
    index = qa_dir / "index.html"
    if not p.options.force and index.exists() and f"<meta name='potpyri-qakey' content='{key}'>" in index.read_text():
        p.summary.products.append(index)
        p.record(index.name, True, 0.0, "up to date")
        return
    targets = []
    groups = p.science_groups()
    with progress(len(groups), "qa") as bar:
        for targtype, group in groups.items():
            numbers = _target(p, targtype, group, qa_dir)
            if numbers is not None:
                targets.append((targtype, numbers))
            bar.update()
    index = write_index(p, qa_dir, targets, key)
    p.summary.products.append(index)
    p.record(index.name, True, 0.0, str(index))
