"""Build GMOS-N raw files as bytes, with hand-written cards and damage, for the reliability tests."""

from __future__ import annotations

import bz2
import gzip
from io import BytesIO
from pathlib import Path

import numpy as np
from astropy.io import fits

from potpyri_core.plugins import PluginManager
from potpyri_core.settings import InstrumentSettings

CARD = 80


def gmos() -> InstrumentSettings:
    """The GMOS-N settings (installed plugin)."""
    return PluginManager().instrument("GMOS-N")


def frame_bytes(instrument: InstrumentSettings, kind: str = "science", exptime: float = 60.0, mjd: float = 60400.1,
                target: str = "SN2024abc", n_ext: int = 12, shape: tuple[int, int] = (4, 4), seed: int = 0,
                ccdsum: str | None = "2 2") -> bytes:
    """A GMOS-N raw frame (primary + ``n_ext`` SCI extensions) as FITS bytes."""
    sim = instrument.simulation
    primary = fits.PrimaryHDU()
    primary.header.update(sim.primary)
    primary.header.update(sim.kinds[kind])
    primary.header["OBJECT"] = target if kind == "science" else sim.kinds[kind]["OBJECT"]
    primary.header["FILTER2"] = "open2-8" if kind == "bias" else sim.filter_names["r"]
    primary.header["EXPTIME"] = exptime
    primary.header["MJD-OBS"] = mjd
    hdus = [primary]
    rng = np.random.default_rng(seed)
    for extver in range(1, n_ext + 1):
        header = fits.Header(sim.extension)
        header.update({"EXTVER": extver, "GAIN": 1.6, "RDNOISE": 4.2})
        if ccdsum is not None:
            header["CCDSUM"] = ccdsum
        hdus.append(fits.ImageHDU(rng.integers(900, 1100, shape).astype(np.uint16), header=header))
    buf = BytesIO()
    fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


def set_card(data: bytes, keyword: str, image: str, hdu_header_index: int = 0) -> bytes:
    """Replace the card of ``keyword`` in the primary header by the raw text ``image``
    (padded to 80 characters, latin-1), or add it before END when absent; no validation."""
    raw = image.encode("latin-1", "replace")[:CARD].ljust(CARD)
    out = bytearray(data)
    key = keyword.encode().ljust(8)
    end = None
    for i in range(0, 2880 * 40, CARD):
        card = bytes(out[i:i + CARD])
        if card[:8] == key:
            out[i:i + CARD] = raw
            return bytes(out)
        if card[:8] == b"END     ":
            end = i
            break
    assert end is not None and out[end + CARD:end + 2 * CARD].strip() == b"", "no room before END"
    out[end:end + 2 * CARD] = raw + b"END".ljust(CARD)
    return bytes(out)


def compressed(data: bytes, suffix: str) -> bytes:
    """``data`` compressed for a name ending in ``suffix`` (``.gz``, ``.bz2`` or plain)."""
    if suffix.endswith(".gz"):
        return gzip.compress(data, mtime=0)
    if suffix.endswith(".bz2"):
        return bz2.compress(data)
    return data


def bad_crc(gz: bytes) -> bytes:
    """A gzip stream whose CRC-32 trailer no longer matches (``gzip -t`` rejects it)."""
    out = bytearray(gz)
    out[-8] ^= 0x01
    return bytes(out)


def write(path: Path, data: bytes) -> Path:
    """Write ``data`` compressed as ``path``'s name says."""
    path.write_bytes(compressed(data, path.name))
    return path
