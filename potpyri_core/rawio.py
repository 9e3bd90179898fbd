"""The raw-file read path: every raw file is decompressed once and checked while it is read.

Archives deliver raw files gzip- (KOA) or bzip2-compressed (Gemini), or tile-compressed
(fpack/Rice). astropy opens a ``.bz2`` lazily and decompresses from the start again for each
extension it seeks to (9.4 s for a 12-extension GMOS frame); here a compressed file is
decompressed in one go into memory, its checksum verified (gzip CRC-32 and length, bzip2
block and stream CRCs, as ``gzip -t`` / ``bzip2 -t`` do), and the HDU list opened on that
buffer. Tile-compressed extensions are left to astropy's ``CompImageHDU``, which decodes an
extension only when its data are used; plain files are memory-mapped.

Sorting needs headers only: :func:`read_headers` streams through the file once, parsing each
header and skipping (plain files: seeking over) the data, so a compressed file is still
decompressed completely — the only way its CRC can be checked and its extensions counted —
but never held in memory.

Every structural problem raises :class:`RawReadError` with the file name and the reason
(``truncated: N of M data bytes in HDU 3``, ``gzip CRC check failed``, ``not a FITS file``).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from astropy.io import fits

BLOCK = 2880
"""FITS block size (bytes)."""
CARD = 80
"""FITS card length (bytes)."""
CHUNK = 1 << 20
"""Bytes read at a time when streaming through data that is skipped."""
MAX_HEADER_BLOCKS = 1000
"""A header longer than this (36 000 cards) is taken as damage, not read to the end."""


class RawReadError(OSError):
    """A raw file cannot be read: damaged compression, truncation, not FITS. The message
    starts with the file name and says what is wrong."""


@dataclass(frozen=True)
class HDUInfo:
    """One HDU as found by :func:`read_headers`.

    Attributes
    ----------
    header : astropy.io.fits.Header
        The header as written (cards parsed lazily by astropy; see :mod:`potpyri_core.headervalues`).
    data_bytes : int
        Size of the data that follows the header, without padding.
    is_image : bool
        True when the HDU holds a 2-D (or higher) image, tile-compressed ones included.
    """

    header: fits.Header
    data_bytes: int
    is_image: bool


@dataclass(frozen=True)
class RawHeaders:
    """The headers of a raw file and a fingerprint of its content.

    Attributes
    ----------
    hdus : list of HDUInfo
        Every HDU in file order.
    fingerprint : str
        Digest of every header block and data size: two files with different fingerprints
        differ in content; equal fingerprints are duplicate candidates (confirm with
        :func:`content_digest`).
    compression : str
        ``"gzip"``, ``"bzip2"`` or ``"none"`` (tile compression inside the FITS is ``"none"``).
    """

    hdus: list[HDUInfo]
    fingerprint: str
    compression: str


def compression_of(path: Path) -> str:
    """Return ``"gzip"``, ``"bzip2"`` or ``"none"`` from the file's first bytes (not its name)."""
    with open(path, "rb") as handle:
        magic = handle.read(3)
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if magic == b"BZh":
        return "bzip2"
    return "none"


def decompressed_bytes(path: Path) -> tuple[bytes, str]:
    """Read a whole raw file, decompressed and checksum-verified, into memory.

    Parameters
    ----------
    path : Path
        Plain, gzip or bzip2 file.

    Returns
    -------
    bytes, str
        The FITS bytes and the compression found.

    Raises
    ------
    RawReadError
        Bad CRC or length, truncated or corrupt compressed stream.
    """
    kind = compression_of(path)
    raw = Path(path).read_bytes()
    if kind == "none":
        return raw, kind
    try:
        return (gzip.decompress(raw) if kind == "gzip" else bz2.decompress(raw)), kind
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise RawReadError(_compression_problem(Path(path), kind, exc)) from exc


def _compression_problem(path: Path, kind: str, exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "ended before" in text:
        return f"{path.name}: truncated {kind} stream ({text}); {kind} -t rejects it"
    if "CRC" in text or "length" in text.lower():
        return f"{path.name}: {kind} CRC check failed ({text}); {kind} -t rejects it"
    return f"{path.name}: corrupt {kind} data ({type(exc).__name__}: {text}); {kind} -t rejects it"


def _int_card(header: fits.Header, keyword: str, default: int | None, where: str) -> int:
    try:
        value = header.get(keyword, default)
    except Exception as exc:
        raise ValueError(f"{where}: unparsable {keyword} card") from exc
    if value is None or isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: {keyword} = {value!r} is not a non-negative integer")
    return value


def data_size(header: fits.Header, where: str = "HDU") -> int:
    """Bytes of data that follow ``header`` (FITS standard 4.4.1.1), without padding."""
    naxis = _int_card(header, "NAXIS", None, where)
    if naxis == 0:
        return 0
    bitpix = header.get("BITPIX")
    if bitpix not in (8, 16, 32, 64, -32, -64):
        raise ValueError(f"{where}: BITPIX = {bitpix!r} is not a FITS BITPIX")
    axes = [_int_card(header, f"NAXIS{i}", None, where) for i in range(1, naxis + 1)]
    pcount = _int_card(header, "PCOUNT", 0, where)
    gcount = _int_card(header, "GCOUNT", 1, where)
    return abs(bitpix) // 8 * gcount * (pcount + math.prod(axes))


def _is_image(header: fits.Header) -> bool:
    if header.get("ZIMAGE") is True:
        return int(header.get("ZNAXIS", 0)) >= 2
    return header.get("XTENSION", "IMAGE").strip() == "IMAGE" and int(header.get("NAXIS", 0)) >= 2


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        part = stream.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _skip(stream: BinaryIO, n: int, seekable: bool) -> int:
    """Skip ``n`` bytes; return how many were there."""
    if seekable:
        here = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(min(here + n, end))
        return min(n, end - here)
    got = 0
    while got < n:
        part = stream.read(min(CHUNK, n - got))
        if not part:
            break
        got += len(part)
    return got


def scan(stream: BinaryIO, name: str, seekable: bool) -> tuple[list[HDUInfo], str]:
    """Walk the HDUs of a FITS byte stream: parse each header, skip its data.

    Parameters
    ----------
    stream : binary file
        Positioned at the start of the FITS data.
    name : str
        File name for messages.
    seekable : bool
        True to seek over data (plain files, memory buffers); False reads through it
        (decompressing streams, so their checksum is verified at the end).

    Returns
    -------
    list of HDUInfo, str
        The HDUs and the content fingerprint (see :class:`RawHeaders`).

    Raises
    ------
    RawReadError
        Not FITS, a header without END, data shorter than the header says.
    """
    hdus: list[HDUInfo] = []
    digest = hashlib.blake2b(digest_size=16)
    while True:
        first = _read_exactly(stream, BLOCK)
        if not first:
            break
        start = first[:10].decode("latin-1")
        if not hdus and not start.startswith("SIMPLE  ="):
            raise RawReadError(f"{name}: not a FITS file (no SIMPLE card at the start)")
        if hdus and not start.startswith("XTENSION="):
            break  # trailing bytes after the last HDU are ignored, as astropy does
        blocks = [first]
        while not _has_end(blocks[-1]):
            if len(blocks) >= MAX_HEADER_BLOCKS:
                raise RawReadError(f"{name}: header of HDU {len(hdus)} has no END card in {MAX_HEADER_BLOCKS} blocks")
            block = _read_exactly(stream, BLOCK)
            if len(block) < BLOCK:
                raise RawReadError(f"{name}: truncated inside the header of HDU {len(hdus)} (no END card)")
            blocks.append(block)
        text = b"".join(blocks)
        digest.update(text)
        try:
            header = fits.Header.fromstring(text.decode("latin-1"))
            size = data_size(header, f"HDU {len(hdus)}")
            is_image = _is_image(header)
        except Exception as exc:  # any unparsable structural card
            raise RawReadError(f"{name}: damaged header: {exc}") from exc
        padded = -(-size // BLOCK) * BLOCK
        got = _skip(stream, padded, seekable)
        if got < size:
            raise RawReadError(f"{name}: truncated: {got} of {size} data bytes in HDU {len(hdus)}")
        digest.update(str(size).encode())
        hdus.append(HDUInfo(header=header, data_bytes=size, is_image=is_image))
        if got < padded:
            break
    if not hdus:
        raise RawReadError(f"{name}: empty file")
    return hdus, digest.hexdigest()


def _has_end(block: bytes) -> bool:
    return any(block[i:i + 8] == b"END     " for i in range(0, len(block), CARD))


def read_headers(path: Path) -> RawHeaders:
    """Read every header of a raw file, for sorting; compressed files are streamed once.

    Parameters
    ----------
    path : Path
        Plain, gzip or bzip2 FITS file (tile-compressed extensions included).

    Returns
    -------
    RawHeaders
        Headers, fingerprint and compression.

    Raises
    ------
    RawReadError
        With the file name and the reason (CRC, truncation, not FITS).
    """
    path = Path(path)
    kind = compression_of(path)
    opener = {"gzip": gzip.open, "bzip2": bz2.open, "none": open}[kind]
    try:
        with opener(path, "rb") as stream:
            try:
                hdus, fingerprint = scan(stream, path.name, seekable=kind == "none")
            except RawReadError:
                if kind != "none":  # damaged compressed data decode to garbage before the CRC is checked
                    _skip(stream, 1 << 62, seekable=False)
                raise
            if kind != "none":
                _skip(stream, 1 << 62, seekable=False)  # to the end: the checksum is checked there
    except RawReadError:
        raise
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise RawReadError(_compression_problem(path, kind, exc)) from exc
    return RawHeaders(hdus=hdus, fingerprint=fingerprint, compression=kind)


def open_raw(path: Path) -> fits.HDUList:
    """Open a raw file for assembly: decompressed once, checked, then opened from memory.

    Plain files are checked for truncation and read lazily (memory mapping cannot scale the
    BZERO-offset integers raw frames hold); extensions (and the tiles of
    tile-compressed ones) are decoded only when their data are used.

    Parameters
    ----------
    path : Path
        The raw file.

    Returns
    -------
    astropy.io.fits.HDUList
        Close it (use ``with``).

    Raises
    ------
    RawReadError
        Bad CRC, truncation, not FITS.
    """
    path = Path(path)
    if compression_of(path) == "none":
        with open(path, "rb") as handle:
            scan(handle, path.name, seekable=True)
        return fits.open(path, memmap=False, lazy_load_hdus=True)
    data, _ = decompressed_bytes(path)
    scan(io.BytesIO(data), path.name, seekable=True)
    return fits.HDUList.fromstring(data)


def content_digest(path: Path) -> str:
    """Digest of a file's decompressed FITS content (equal for ``X.fits`` and ``X.fits.gz``)."""
    data, _ = decompressed_bytes(path)
    return hashlib.blake2b(data, digest_size=16).hexdigest()
