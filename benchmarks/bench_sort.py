"""Benchmark: sorting a night of 500 GMOS-N raw files (header reading and classification).

Target (from the issue): sorting 500 files' headers takes under 10 s on a 2-core machine.

Each file has the real 13-HDU GMOS-N structure: the real primary header
(``/work/shared/data/templates/gmos-n_phu.hdr``, 154 cards) and 12 SCI extensions with the
real extension cards (``gmos-n_ext.hdr``), but only 8x8 pixels each, so the disk use stays
small while the header parsing, which is what sorting costs, is real.

Usage::

    python benchmarks/bench_sort.py [--n 500] [--repeat 3] [--templates DIR]

Prints one row per variant (plain / gzip / bzip2, workers 1 / 2): best and median seconds of
``sort_night`` over the repeats, files per second, and whether the 10 s target is met. Then,
for one full-size GMOS-N 2x2 science frame written as the archive does (``.fits.bz2``, 12
extensions), the seconds to open and assemble it with astropy's lazy ``fits.open`` (the read
path before) and with ``potpyri_core.rawio.open_raw`` (decompressed once, CRC checked).
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import statistics
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np
from astropy.io import fits

from potpyri_core.filelist import sort_night
from potpyri_core.plugins import PluginManager

TEMPLATES = Path("/work/shared/data/templates")
TARGET_SECONDS = 10.0

# (kind, OBSTYPE, OBSCLASS, SHUTTER, OBJECT, EXPTIME, FILTER2): a realistic mix for one night
KINDS = [
    ("bias", "BIAS", "dayCal", "CLOSED", "Bias", 0.0, "open2-8"),
    ("flat", "OBJECT", "dayCal", "OPEN", "Twilight", 8.0, "r_G0303"),
    ("science", "OBJECT", "science", "OPEN", "SN2024abc", 300.0, "r_G0303"),
    ("science", "OBJECT", "science", "OPEN", "SN2024abc", 300.0, "g_G0301"),
]
MIX = [0] * 20 + [1] * 15 + [2] * 40 + [3] * 25  # per 100 files: 20 bias, 15 flats, 65 science


def frame_bytes(phu: fits.Header, ext: fits.Header, kind: int, number: int) -> bytes:
    """Serialise one raw GMOS-N frame (13 HDUs) to bytes."""
    _, obstype, obsclass, shutter, obj, exptime, filter2 = KINDS[kind]
    primary = fits.PrimaryHDU(header=phu.copy())
    primary.header.update({"OBSTYPE": obstype, "OBSCLASS": obsclass, "SHUTTER": shutter, "OBJECT": obj,
                           "EXPTIME": exptime, "FILTER2": filter2, "MJD-OBS": 60400.0 + number * 1e-3})
    hdus = [primary]
    rng = np.random.default_rng(number)
    for extver in range(1, 13):
        header = ext.copy()
        header["EXTVER"] = extver
        hdus.append(fits.ImageHDU(rng.integers(900, 1100, (8, 8)).astype(np.uint16), header=header))
    buf = BytesIO()
    fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


def write_night(folder: Path, n: int, templates: Path, compression: str) -> int:
    """Write ``n`` frames into ``folder``; return the bytes written."""
    phu = fits.Header.fromtextfile(templates / "gmos-n_phu.hdr")
    ext = fits.Header.fromtextfile(templates / "gmos-n_ext.hdr")
    for key in ("XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT"):
        ext.remove(key, ignore_missing=True)
    total = 0
    for i in range(n):
        data = frame_bytes(phu, ext, MIX[i % len(MIX)], i)
        name = f"N20240410S{i + 1:04d}.fits"
        if compression == "gzip":
            data, name = gzip.compress(data, compresslevel=6), name + ".gz"
        elif compression == "bzip2":
            data, name = bz2.compress(data, compresslevel=9), name + ".bz2"
        (folder / name).write_bytes(data)
        total += len(data)
    return total


def time_sort(instrument, folder: Path, workers: int, repeat: int) -> tuple[list[float], dict[str, int]]:
    times = []
    counts: dict[str, int] = {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        table = sort_night(instrument, folder, workers=workers)
        times.append(time.perf_counter() - t0)
        counts = {t: int((table["Type"] == t).sum()) for t in sorted(set(table["Type"]))}
    return times, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="files per night")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per variant")
    parser.add_argument("--templates", type=Path, default=TEMPLATES, help="folder with gmos-n_phu.hdr, gmos-n_ext.hdr")
    parser.add_argument("--skip-open", action="store_true", help="skip the open+assemble timing")
    args = parser.parse_args()

    instrument = PluginManager().instrument("GMOS-N")
    rows = []
    with tempfile.TemporaryDirectory(prefix="potpyri-bench-sort-") as tmp:
        for variant in ("plain", "gzip", "bzip2"):
            folder = Path(tmp) / variant
            folder.mkdir()
            t0 = time.perf_counter()
            size = write_night(folder, args.n, args.templates, variant)
            print(f"wrote {args.n} {variant} files ({size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s")
            for workers in (1, 2):
                times, counts = time_sort(instrument, folder, workers, args.repeat)
                expected = {"BIAS": args.n // 5, "FLAT": args.n * 15 // 100, "SCIENCE": args.n * 65 // 100}
                if args.n % 100 == 0 and counts != expected:
                    raise SystemExit(f"wrong classification for {variant}, workers={workers}: {counts}")
                rows.append((variant, workers, min(times), statistics.median(times)))

    print()
    print(f"sort_night of {args.n} GMOS-N files (13 HDUs each), best/median of {args.repeat} runs")
    print(f"{'variant':<8}{'workers':>8}{'best s':>9}{'median s':>10}{'files/s':>10}  target <{TARGET_SECONDS:g} s")
    for variant, workers, best, median in rows:
        ok = "yes" if median < TARGET_SECONDS else "NO"
        print(f"{variant:<8}{workers:>8}{best:>9.2f}{median:>10.2f}{args.n / median:>10.0f}  {ok}")
    if not args.skip_open:
        time_open_assemble(instrument, args.repeat)


def time_open_assemble(instrument, repeat: int) -> None:
    """Seconds to open and assemble one GMOS-N 2x2 ``.fits.bz2`` frame, before and after."""
    from astropy.io import fits

    from potpyri_core.corestages import JobContext, load_raw
    from potpyri_core.params import Parameters
    from potpyri_core.simulate.instrument_night import simulate_instrument_night

    with tempfile.TemporaryDirectory(prefix="potpyri-bench-open-") as tmp:
        paths = simulate_instrument_night(PluginManager(), instrument, Path(tmp), binning=2, n_science=1, n_flats=0,
                                          n_bias=0, compression="bz2")
        path = paths["raw"][0]
        pm = PluginManager()
        ctx = JobContext(instrument, Parameters(), pm.spec)
        hook = pm.for_instrument(instrument.name)

        def before() -> None:
            with fits.open(path, memmap=False) as hdul:
                hook.potpyri_assemble(instrument=instrument, hdul=hdul, path=path)

        rows = []
        for name, func in (("astropy fits.open (before)", before),
                           ("rawio.open_raw (after)", lambda: load_raw(ctx, path, 120.0))):
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                func()
                times.append(time.perf_counter() - t0)
            rows.append((name, min(times), statistics.median(times)))
    print()
    print(f"open + assemble one GMOS-N 2x2 .fits.bz2 frame (12 extensions), best/median of {repeat}")
    for name, best, median in rows:
        print(f"{name:<28}{best:>8.2f} s{median:>8.2f} s")


if __name__ == "__main__":
    main()
