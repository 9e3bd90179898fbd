"""The read path: decompress once, verify CRCs, detect truncation, read tile-compressed files."""

from __future__ import annotations

import bz2
import gzip
import shutil
import subprocess
from io import BytesIO

import numpy as np
import pytest
from astropy.io import fits

from potpyri_core.corestages import JobContext, load_raw
from potpyri_core.filelist import sort_night
from potpyri_core.params import Parameters
from potpyri_core.plugins import PluginSpec
from potpyri_core.rawio import RawReadError, content_digest, open_raw, read_headers
from tests.reliability.rawfiles import bad_crc, frame_bytes, gmos, write


@pytest.fixture(scope="module")
def instrument():
    return gmos()


def test_bad_gzip_crc_is_rejected_like_gzip_t(instrument, tmp_path):
    path = tmp_path / "N20240410S0001.fits.gz"
    path.write_bytes(bad_crc(gzip.compress(frame_bytes(instrument), mtime=0)))
    if shutil.which("gzip"):
        assert subprocess.run(["gzip", "-t", str(path)], check=False, capture_output=True).returncode != 0
    for reader in (read_headers, open_raw):
        with pytest.raises(RawReadError, match=r"^N20240410S0001\.fits\.gz: gzip CRC check failed"):
            reader(path)
    table = sort_night(instrument, tmp_path)
    assert table["Type"][0] == "BAD" and "gzip CRC check failed" in table["Reason"][0]
    with pytest.raises(RawReadError, match="CRC"):
        load_raw(JobContext(instrument, Parameters(), PluginSpec()), path, 60.0)


def test_corrupt_bzip2_is_rejected(instrument, tmp_path):
    data = bytearray(bz2.compress(frame_bytes(instrument)))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "N20240410S0002.fits.bz2"
    path.write_bytes(bytes(data))
    with pytest.raises(RawReadError, match=r"^N20240410S0002\.fits\.bz2: .*bzip2"):
        read_headers(path)
    with pytest.raises(RawReadError, match=r"^N20240410S0002\.fits\.bz2: .*bzip2"):
        open_raw(path)


@pytest.mark.parametrize("suffix", [".fits", ".fits.gz", ".fits.bz2"])
def test_truncated_data_names_the_bytes(instrument, tmp_path, suffix):
    full = frame_bytes(instrument, shape=(40, 40))
    cut = full[: len(full) - 2880 * 2]  # the last extension loses most of its data
    path = write(tmp_path / f"N20240410S0003{suffix}", cut)
    with pytest.raises(RawReadError, match=r"^N20240410S0003\S*: truncated: \d+ of 3200 data bytes in HDU 12$"):
        read_headers(path)
    table = sort_night(instrument, tmp_path)
    assert table["Type"][0] == "BAD" and "truncated:" in table["Reason"][0]


def test_truncated_compressed_stream(instrument, tmp_path):
    gz = gzip.compress(frame_bytes(instrument), mtime=0)
    path = tmp_path / "N20240410S0004.fits.gz"
    path.write_bytes(gz[: len(gz) // 2])
    with pytest.raises(RawReadError, match=r"^N20240410S0004\.fits\.gz: truncated gzip stream"):
        read_headers(path)


def test_header_only_file_is_bad_truncated_no_data(instrument, tmp_path):
    full = frame_bytes(instrument)
    header = fits.Header.fromstring(full[:2880 * 4].decode("latin-1"))  # the primary header only
    fits.PrimaryHDU(header=header).writeto(tmp_path / "N20240410S0005.fits")
    table = sort_night(instrument, tmp_path)
    assert (table["Type"][0], table["Reason"][0]) == (
        "BAD", "N20240410S0005.fits: truncated/no data: headers only, no image data")


def test_garbage_bytes_are_not_fits(instrument, tmp_path):
    (tmp_path / "N20240410S0006.fits").write_bytes(bytes(range(256)) * 40)
    table = sort_night(instrument, tmp_path)
    assert table["Reason"][0] == "N20240410S0006.fits: not a FITS file (no SIMPLE card at the start)"


@pytest.mark.parametrize("suffix", [".fits.gz", ".fits.bz2"])
def test_compressed_open_gives_the_plain_pixels(instrument, tmp_path, suffix):
    data = frame_bytes(instrument, shape=(20, 30), seed=3)
    plain, packed = write(tmp_path / "a.fits", data), write(tmp_path / f"b{suffix}", data)
    with open_raw(plain) as a, open_raw(packed) as b:
        assert len(a) == len(b) == 13
        for ha, hb in zip(a[1:], b[1:], strict=True):
            np.testing.assert_array_equal(ha.data, hb.data)
    assert content_digest(plain) == content_digest(packed)
    assert read_headers(packed).fingerprint == read_headers(plain).fingerprint


def test_tile_compressed_extensions(instrument, tmp_path):
    plain = fits.HDUList.fromstring(frame_bytes(instrument, shape=(16, 16), seed=4))
    hdus = [fits.PrimaryHDU(header=plain[0].header)]
    hdus += [fits.CompImageHDU(h.data, header=h.header, compression_type="RICE_1") for h in plain[1:]]
    buf = BytesIO()
    fits.HDUList(hdus).writeto(buf)
    path = tmp_path / "N20240410S0007.fits.fz"
    path.write_bytes(buf.getvalue())
    raw = read_headers(path)
    assert sum(h.is_image for h in raw.hdus) == 12
    with open_raw(path) as hdul:
        np.testing.assert_array_equal(hdul[5].data, plain[5].data)
    table = sort_night(instrument, tmp_path)
    assert (table["Type"][0], table["Binning"][0], table["Amp"][0]) == ("SCIENCE", "2x2", "12")
