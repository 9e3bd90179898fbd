"""Products of a reduction: where they go, how they are written, what they record.

Every path built from file-list values is checked to lie inside ``DATA_PATH/red``
(:func:`potpyri_core.safenames.ensure_inside`). Layout under ``DATA_PATH/red`` (POTPyRI's): ``cals/m<kind>_<group>.fits`` (masters),
``workspace/<raw stem>_red.fits`` (calibrated frames), ``<target>.<filter>.ut<yymmdd>.
<amp>.<binning>.stk.fits`` (stacks), ``log/``, ``catalogs/``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import astropy
import numpy as np
import photutils
import scipy
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time

from potpyri_core import __version__
from potpyri_core.safenames import ensure_inside
from potpyri_core.settings import InstrumentSettings


def atomic_write(hdul: fits.HDUList, path: Path) -> None:
    """Write FITS to a temporary name and rename, so a good file is never half-replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        hdul.writeto(tmp, overwrite=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write (full disk) leaves no partial file


def md5sum(path: Path) -> str:
    """MD5 checksum of a file (provenance)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def workspace_path(red: Path, raw_name: str) -> Path:
    """Per-frame product in ``red/workspace``."""
    stem = raw_name.split(".fits")[0].split(".fit")[0]
    return ensure_inside(red / "workspace" / f"{stem}_red.fits", red)


def stack_path(red: Path, group: Table) -> Path:
    """Stack file name: ``red/<target>.<filter>.ut<yymmdd>.<amp>.<binning>.stk.fits`` (``<amp>``
    is ``all`` for a group of several chips or amplifier modes)."""
    row = group[0]
    first = float(np.nanmin(group["Time"]))
    date = Time(first, format="mjd").strftime("%y%m%d") if np.isfinite(first) else "unknown"
    amp = row["Amp"] if len(set(group["Amp"])) == 1 else "all"
    return ensure_inside(red / f"{row['Target']}.{row['Filter']}.ut{date}.{amp}.{row['Binning']}.stk.fits", red)


def stack_header(instrument: InstrumentSettings, out_header: fits.Header, first: fits.Header, group: Table,
                 frame_headers: list[fits.Header]) -> fits.Header:
    """Header of a stack: identity, grid WCS, units, exposure, astrometric dispersion."""
    header = fits.Header()
    for key in ("INSTRUME", "OBJECT"):
        if key in first:
            header[key] = first[key]
    header["TELESCOP"] = (str(first.get("TELESCOP", instrument.telescope)), "telescope")
    header["OBSERVAT"] = (str(first.get("OBSERVAT", instrument.observatory)), "observatory")
    header["FILTER"] = (str(group[0]["Filter"]), "band")
    header.update(out_header)
    header["BUNIT"] = ("electron/s", "stack unit")
    header["EXPTIME"] = (1.0, "stack is in e-/s; total exposure in TEXPTIME")
    header["TEXPTIME"] = (float(np.sum([h["EXPTIME"] for h in frame_headers])), "total exposure of the inputs (s)")
    header["NCOMBINE"] = (len(frame_headers), "frames combined")
    header["MJD-OBS"] = (float(np.nanmin(group["Time"])), "start of the first exposure")
    for key in ("RADISP", "DEDISP"):
        values = [h[key] for h in frame_headers if key in h]
        if values:
            header[key] = (float(np.sqrt(np.mean(np.square(values)))), "RMS of per-frame astrometric residuals (\")")
    header["POTPYRI"] = (__version__, "potpyri-core version")
    header["PIPEINST"] = (instrument.name, "instrument settings used")
    return header


def provenance_hdu(frame_headers: list[fits.Header], settings: dict[str, Any], options_json: str,
                   params_json: str, plugin_versions: dict[str, str]) -> fits.BinTableHDU:
    """PROVENANCE extension: each input (raw file, md5, masters used), settings, options,
    resolved step parameters and the versions of the code."""
    rows = [(str(h.get("RAWFILE", "")), str(h.get("RAWMD5", "")),
             ";".join(str(h[k]) for k in ("BIASCOR", "DARKCOR", "FLATCOR", "FRNGCOR") if k in h)) for h in frame_headers]
    table = Table(rows=rows, names=["file", "md5", "calibrations"], dtype=[str, str, str])
    table.meta["SETTINGS"] = json.dumps(settings)[:60000]
    table.meta["OPTIONS"] = options_json
    table.meta["PARAMS"] = params_json
    table.meta["PLUGINS"] = json.dumps(plugin_versions, sort_keys=True)
    hdu = fits.table_to_hdu(table)
    hdu.name = "PROVENANCE"
    hdu.header["V_POTPYR"] = __version__
    hdu.header["V_ASTROP"] = astropy.__version__
    hdu.header["V_NUMPY"] = np.__version__
    hdu.header["V_SCIPY"] = scipy.__version__
    hdu.header["V_PHOTUT"] = photutils.__version__
    return hdu
