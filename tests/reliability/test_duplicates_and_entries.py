"""Duplicates, dangling links and folders matching the raw pattern are reported, never silent
(issue 12, items 5 and 13)."""

from __future__ import annotations

import logging
import shutil

import pytest

from potpyri_core.filelist import read_file_list, sort_night
from tests.reliability.rawfiles import frame_bytes, gmos, write


@pytest.fixture(scope="module")
def instrument():
    return gmos()


def reasons(table) -> dict[str, tuple[str, str]]:
    return {f: (t, r) for f, t, r in zip(table["File"], table["Type"], table["Reason"], strict=True)}


def test_same_stem_and_same_content_keep_one(instrument, tmp_path):
    write(tmp_path / "N20240410S0001.fits", frame_bytes(instrument, mjd=60400.1, seed=1))
    write(tmp_path / "N20240410S0001.fits.gz", frame_bytes(instrument, mjd=60400.15, seed=9))  # other content
    shutil.copy(tmp_path / "N20240410S0001.fits", tmp_path / "N20240410S0001 copy.fits")
    write(tmp_path / "N20240410S0002.fits", frame_bytes(instrument, mjd=60400.2, seed=2))
    write(tmp_path / "N20240410S0003.fits.bz2", frame_bytes(instrument, mjd=60400.2, seed=2))  # same content
    write(tmp_path / "N20240410S0004.fits", frame_bytes(instrument, mjd=60400.3, seed=3))
    write(tmp_path / "N20240410S0005.fits", frame_bytes(instrument, mjd=60400.3, seed=4))  # same headers only
    rows = reasons(sort_night(instrument, tmp_path))
    assert rows["N20240410S0001.fits"] == ("SCIENCE", "-")
    assert rows["N20240410S0001.fits.gz"] == ("BAD", ("N20240410S0001.fits.gz: duplicate of N20240410S0001.fits"
                                              " (same name stem: their products would collide);"
                                              " only N20240410S0001.fits is used"))
    assert rows["N20240410S0001 copy.fits"][0] == "BAD"
    assert "duplicate of N20240410S0001.fits (identical content)" in rows["N20240410S0001 copy.fits"][1]
    assert rows["N20240410S0002.fits"] == ("SCIENCE", "-")
    assert rows["N20240410S0003.fits.bz2"][0] == "BAD"
    assert "duplicate of N20240410S0002.fits (identical content)" in rows["N20240410S0003.fits.bz2"][1]
    assert rows["N20240410S0004.fits"] == rows["N20240410S0005.fits"] == ("SCIENCE", "-")


def test_dangling_links_and_folders_are_listed_bad(instrument, tmp_path, caplog):
    write(tmp_path / "N20240410S0001.fits", frame_bytes(instrument))
    (tmp_path / "N20240410S0002.fits").symlink_to(tmp_path / "gone.fits")
    (tmp_path / "N20240410S0003.fits").mkdir()
    (tmp_path / "N20240410S0004.fits.gz").symlink_to(tmp_path / "N20240410S0001.fits")  # a good link: read
    with caplog.at_level(logging.WARNING, logger="potpyri"):
        sort_night(instrument, tmp_path)
    rows = reasons(read_file_list(tmp_path / "file_list.txt"))
    assert rows["N20240410S0002.fits"] == (
        "BAD", f"N20240410S0002.fits: dangling symbolic link to {tmp_path / 'gone.fits'} (target missing)")
    assert rows["N20240410S0003.fits"] == ("BAD", "N20240410S0003.fits: a folder, not a raw file")
    assert rows["N20240410S0001.fits"] == ("SCIENCE", "-")
    assert "duplicate of N20240410S0001.fits" in rows["N20240410S0004.fits.gz"][1]
    logged = caplog.text
    assert "dangling symbolic link" in logged and "a folder, not a raw file" in logged and "duplicate of" in logged
