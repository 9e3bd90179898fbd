"""Property-based: fuzzed classification keywords, card syntax and file damage never raise out of
classification or ``potpyri sort``; every file is classified or BAD with a reason naming it."""

from __future__ import annotations

import gzip
import string

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from potpyri_core.cli import main
from potpyri_core.filelist import _classify_one, read_file_list
from potpyri_core.plugins import PluginSpec
from tests.reliability.rawfiles import bad_crc, frame_bytes, gmos, set_card

pytestmark = pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning",
                                    "ignore::astropy.utils.exceptions.AstropyUserWarning")

INSTRUMENT = gmos()
TYPES = {"SCIENCE", "FLAT", "BIAS", "DARK", "SPEC", "BAD"}
KEYWORDS = ["EXPTIME", "OBJECT", "FILTER1", "FILTER2", "MJD-OBS", "CCDSUM", "OBSTYPE", "OBSCLASS", "SHUTTER",
            "INSTRUME", "GRATING", "MASKNAME", "RAWGEMQA", "DATE-OBS", "TIME-OBS", "NAXIS", "BITPIX", "NAXIS1"]
VALUE_TEXT = st.one_of(
    st.sampled_from(["12O.0XYZ", "NaN", "inf", "-inf", "0x10", "1e999", "T", "F", "0", "-1", "''", "' '", "'0 0'",
                     "'x'", "'2 2'", "'r/../../../x'", "'r\tG0303'", "'\x01'", "'BIAS'", "'OBJECT'", "'GMOS-N'",
                     "'open1-6'", "'dayCal'", "'a''b'", "'unterminated", "1.5D3", "(1, 2)", "", "=", "/ comment"]),
    st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=30),
    st.floats().map(repr),
    st.integers(-10**20, 10**20).map(str),
)
CARD = st.tuples(st.sampled_from(KEYWORDS), VALUE_TEXT, st.sampled_from(["= ", "=", " =", ""]))
DAMAGE = st.one_of(
    st.none(),
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("garbage"), st.floats(0.0, 1.0), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("gzip"), st.booleans()),  # compress; True: with a bad CRC
)
FRAME = st.tuples(st.sampled_from(["science", "flat", "bias"]), st.lists(CARD, max_size=4), DAMAGE)


def damaged_file(kind: str, cards: list[tuple[str, str, str]], damage: tuple | None) -> tuple[str, bytes]:
    """A GMOS-N file with hand-written cards and damage, and its name."""
    data = frame_bytes(INSTRUMENT, kind)
    for keyword, value, sep in cards:
        data = set_card(data, keyword, f"{keyword:<8}{sep}{value}")
    name = "N20240410S0001.fits"
    if damage is None:
        return name, data
    if damage[0] == "truncate":
        return name, data[: int(len(data) * damage[1])]
    if damage[0] == "garbage":
        at = int(len(data) * damage[1])
        return name, data[:at] + damage[2] + data[at + len(damage[2]):]
    packed = gzip.compress(data, mtime=0)
    return name + ".gz", bad_crc(packed) if damage[1] else packed


def check(classification, name: str) -> None:
    assert classification.file == name
    assert classification.type in TYPES
    if classification.type == "BAD":
        assert classification.reason.strip(), classification
    assert set(classification.target) <= set(string.ascii_letters + string.digits + "._+-")
    assert set(classification.filter) <= set(string.ascii_letters + string.digits + "._+-?")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(frame=FRAME)
def test_classification_never_raises(tmp_path_factory, frame):
    name, data = damaged_file(*frame)
    path = tmp_path_factory.getbasetemp() / name
    path.write_bytes(data)
    classification, _ = _classify_one((PluginSpec(), INSTRUMENT, path))
    check(classification, name)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(frames=st.lists(FRAME, min_size=1, max_size=5))
def test_potpyri_sort_never_raises(tmp_path_factory, frames):
    folder = tmp_path_factory.mktemp("night")
    names = []
    for i, frame in enumerate(frames):
        name, data = damaged_file(*frame)
        name = name.replace("S0001", f"S{i + 1:04d}")
        (folder / name).write_bytes(data)
        names.append(name)
    result = CliRunner().invoke(main, ["sort", "GMOS-N", str(folder), "--proc", "1"])
    assert result.exit_code == 0 and result.exception is None, result.output
    table = read_file_list(folder / "file_list.txt")
    assert sorted(table["File"]) == sorted(names)
    for row in table:
        assert row["Type"] in TYPES
        if row["Type"] == "BAD":
            assert row["Reason"] not in ("", "-")
