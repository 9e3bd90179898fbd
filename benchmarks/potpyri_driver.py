"""Run POTPyRI (the reference pipeline, from PyPI) offline on a night, timing its steps.

Run by ``benchmarks/compare_potpyri.py`` with the Python of a separate venv that has
``potpyri`` installed (never this project's venv: the two must not share packages)::

    /work/venv-potpyri/bin/python benchmarks/potpyri_driver.py NIGHT GAIA.ecsv PS1.ecsv INDEX_DIR

Only the transport is replaced, none of POTPyRI's processing:

- ``potpyri.utils.catalogs.query_vizier_region`` (its one VizieR call) answers from the local
  catalog files: the same box cut, the same VizieR catalog ids and column names (Gaia DR3
  ``I/355/gaiadr3``: RA_ICRS, DE_ICRS, Plx, PM, PSS made from the saved Gaia table; PS1
  ``II/349``: the saved table, which has VizieR's names).
- ``solve_wcs.solve_astrometry`` gets the ``index`` argument it already has, the folder of
  astrometry.net index files built for the field (``potpyri index build``).

Its start-up check ``options.test_for_dependencies`` is not called: it looks for the text
"syntax: sex" in ``sex -h``, and Debian's Source Extractor prints "SYNTAX: source-extractor"
whatever it is called by; the ``sex`` on PATH (a link made by ``compare_potpyri.py``) is what
its processing runs.

Its top-level steps are wrapped with timers (wall seconds per step, printed with the peak
memory of this process as one JSON line at the end, prefixed ``TIMINGS``).
"""

from __future__ import annotations

import functools
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

SECONDS: dict[str, float] = {}


def timed(name: str, func):
    """``func`` adding its wall time to ``SECONDS[name]``."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            SECONDS[name] = SECONDS.get(name, 0.0) + time.perf_counter() - start

    return wrapper


def vizier_tables(gaia_path: Path, ps1_path: Path) -> dict[str, Table]:
    """The local catalogs under VizieR's catalog ids and column names."""
    gaia = Table.read(gaia_path)
    vizier_gaia = Table()
    vizier_gaia["RA_ICRS"] = np.asarray(gaia["ra"], float)
    vizier_gaia["DE_ICRS"] = np.asarray(gaia["dec"], float)
    vizier_gaia["Plx"] = np.asarray(gaia["parallax"], float) if "parallax" in gaia.colnames else 0.0
    pm = np.hypot(np.nan_to_num(np.asarray(gaia["pmra"], float)), np.nan_to_num(np.asarray(gaia["pmdec"], float)))
    vizier_gaia["PM"] = pm
    vizier_gaia["PSS"] = 1.0  # probability of a single star: all simulated sources are stars
    return {"I/355/gaiadr3": vizier_gaia, "II/349": Table.read(ps1_path)}


def local_query(tables: dict[str, Table]):
    """A stand-in for ``query_vizier_region(center, width, catalog_id, columns, log)``."""

    def query_vizier_region(center, width, catalog_id, columns, log=None):
        table = tables.get(catalog_id)
        if table is None:
            return None
        ra_col = "RA_ICRS" if "RA_ICRS" in table.colnames else "RAJ2000"
        dec_col = "DE_ICRS" if "DE_ICRS" in table.colnames else "DEJ2000"
        pos = SkyCoord(table[ra_col], table[dec_col], unit="deg")
        dlon, dlat = center.spherical_offsets_to(pos)
        half = u.Quantity(width, u.deg).value / 2  # astroquery's width is the side of the box
        inside = (np.abs(dlon.deg) <= half) & (np.abs(dlat.deg) <= half)
        keep = [c for c in columns if c in table.colnames] or table.colnames
        return table[inside][keep] if inside.any() else None

    return query_vizier_region


def main() -> None:
    """Patch the transport, wrap the steps with timers, run ``main_pipeline``."""
    night, gaia_path, ps1_path, index_dir = (Path(a) for a in sys.argv[1:5])
    from potpyri.primitives import absphot, calibration, image_procs, photometry, solve_wcs, sort_files
    from potpyri.scripts import main_pipeline
    from potpyri.utils import catalogs, options

    catalogs.query_vizier_region = local_query(vizier_tables(gaia_path, ps1_path))
    solve_wcs.solve_astrometry = functools.partial(solve_wcs.solve_astrometry, index=str(index_dir))
    sort_files.handle_files = timed("sort", sort_files.handle_files)
    for name in ("do_bias", "do_dark", "do_flat"):
        setattr(calibration, name, timed("calibrations", getattr(calibration, name)))
    solve_wcs.solve_astrometry = timed("astrometry", solve_wcs.solve_astrometry)
    solve_wcs.fine_align_wcs = timed("astrometry", solve_wcs.fine_align_wcs)
    image_procs.image_proc = timed("image_proc", image_procs.image_proc)
    photometry.photloop = timed("photometry", photometry.photloop)
    absphot.find_zeropoint = timed("zeropoint", absphot.find_zeropoint)
    sys.argv = ["main_pipeline", "GMOS", str(night)]
    args = options.add_options()
    start = time.perf_counter()
    main_pipeline.main_pipeline(**vars(args))
    wall = time.perf_counter() - start
    # image_proc holds frame calibration, astrometry and the stack: separate the astrometry
    SECONDS["frames+stack"] = SECONDS.pop("image_proc", 0.0) - SECONDS.get("astrometry", 0.0)
    self_usage = resource.getrusage(resource.RUSAGE_SELF)
    child_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print("TIMINGS " + json.dumps({
        "stages": SECONDS, "wall": wall,
        "cpu": self_usage.ru_utime + self_usage.ru_stime + child_usage.ru_utime + child_usage.ru_stime,
        "peak_mb": self_usage.ru_maxrss / 1024, "child_peak_mb": child_usage.ru_maxrss / 1024}), flush=True)


if __name__ == "__main__":
    main()
