"""A small simulated night with damaged files added still reduces its good frames (issue 12)."""

from __future__ import annotations

import bz2
import gzip
import io

from astropy.io import fits
from click.testing import CliRunner

from potpyri_core.cli import main
from potpyri_core.filelist import read_file_list
from tests.reliability.rawfiles import bad_crc, set_card


def test_damaged_night_reduces_its_good_frames(tmp_path):
    night = tmp_path / "night"
    runner = CliRunner()
    result = runner.invoke(main, ["simulate", "GMOS-N", str(night), "--binning", "4", "--n-science", "3"])
    assert result.exit_code == 0, result.output
    science = max(night.glob("*.fits.bz2"))  # the archive's compression by default
    plain = bz2.decompress(science.read_bytes())
    with fits.open(io.BytesIO(plain)) as hdul:  # cut in the middle of the pixels of extension 3
        cut = hdul[3]._data_offset + hdul[3]._data_size // 2
    (night / "N20990101S0901.fits").write_bytes(plain[:cut])  # truncated
    (night / "N20990101S0902.fits.gz").write_bytes(bad_crc(gzip.compress(plain, mtime=0)))  # bad CRC
    fits.PrimaryHDU(header=fits.Header.fromstring(plain[:2880 * 4].decode("latin-1"))).writeto(
        night / "N20990101S0903.fits")  # header only
    (night / "N20990101S0904.fits").write_bytes(set_card(plain, "EXPTIME", "EXPTIME = 12O.0XYZ"))
    duplicate = science.name.replace(".bz2", ".gz")
    (night / duplicate).write_bytes(gzip.compress(plain, mtime=0))
    (night / "N20990101S0905.fits").symlink_to(night / "gone.fits")
    (night / "N20990101S0906.fits").mkdir()

    result = runner.invoke(main, ["reduce", "GMOS-N", str(night), "--proc", "2",
                                  "--catalog", str(night / "refcat" / "gaia_dr3.ecsv"),
                                  "--catalog", str(night / "refcat" / "ps1.ecsv")])
    assert result.exit_code == 0, result.output
    table = read_file_list(night / "file_list.txt")
    rows = {f: (t, r) for f, t, r in zip(table["File"], table["Type"], table["Reason"], strict=True)}
    expected = {"N20990101S0901.fits": "truncated:", "N20990101S0902.fits.gz": "gzip CRC check failed",
                "N20990101S0903.fits": "truncated/no data", "N20990101S0904.fits": "EXPTIME = 12O.0XYZ",
                duplicate: f"duplicate of {science.name}",
                "N20990101S0905.fits": "dangling symbolic link", "N20990101S0906.fits": "a folder"}
    for name, words in expected.items():
        kind, reason = rows[name]
        assert kind == "BAD" and reason.startswith(name) and words in reason, (name, reason)
    assert sum(t == "SCIENCE" for t, _ in rows.values()) == 3
    stacks = sorted((night / "red").glob("*.stk.fits"))
    assert len(stacks) == 1
    with fits.open(stacks[0]) as hdul:
        assert hdul[0].header["NCOMBINE"] == 3
        assert "ZPTMAG" in hdul[0].header
    red = (night / "red").resolve()
    assert all(p.resolve().is_relative_to(red) for p in (night / "red").rglob("*"))
