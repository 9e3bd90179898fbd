"""The file list round-trips any value and --no-redo-sort honours a person's edits (issue 12, item 4)."""

from __future__ import annotations

import math
import re

from astropy.table import Table
from hypothesis import given, settings
from hypothesis import strategies as st

from potpyri_core.filelist import sort_night
from potpyri_core.filelisttext import COLUMNS, read_file_list, write_file_list
from tests.reliability.rawfiles import frame_bytes, gmos, set_card, write

TRICKY = st.sampled_from(["", " ", "a b", 'q"uote', "it's", "#hash", "a,b", "ü漢", "\t", "\n", "\r", "\\", "\\x41",
                          " lead", "trail ", "nan", "None", "-", '""', "--", "# %ECSV 1.0"])
# NUL is left out: numpy strings drop trailing NULs (and no file name or FITS value holds one)
VALUES = st.lists(st.one_of(TRICKY, st.text(st.characters(exclude_characters="\x00"), max_size=12)), min_size=1,
                  max_size=4).map("".join)
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(math.nan))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(*([VALUES] * 9), NUMBERS, NUMBERS, st.integers(1, 99)), min_size=0, max_size=5))
def test_fuzzed_values_round_trip(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("fl") / "file_list.txt"
    text_columns = [c for c in COLUMNS if c not in ("Exp", "Time", "Coadds")]
    data = {c: [r[i] for r in rows] for i, c in enumerate(text_columns)}
    data["Exp"] = [r[9] for r in rows]
    data["Time"] = [r[10] for r in rows]
    data["Coadds"] = [r[11] for r in rows]
    table = Table({c: data[c] for c in COLUMNS}, dtype=[str] * 6 + [float, str, str, float, str, int])
    write_file_list(table, path)
    back = read_file_list(path)
    assert back.colnames == COLUMNS and len(back) == len(rows)
    for column in text_columns:
        assert [str(v) for v in back[column]] == data[column]
    for column in ("Exp", "Time"):
        for got, want in zip(back[column], data[column], strict=True):
            assert (math.isnan(got) and math.isnan(want)) or got == want
    assert list(back["Coadds"]) == data["Coadds"]


def test_spaces_in_names_and_values_survive_no_redo_sort(tmp_path):
    instrument = gmos()
    write(tmp_path / "N20240410S0009 copy.fits", set_card(frame_bytes(instrument), "FILTER2", "FILTER2 = 'r G0303'"))
    write(tmp_path / "N20240410S0010.fits", frame_bytes(instrument, mjd=60400.2))
    table = sort_night(instrument, tmp_path)
    assert set(table["File"]) == {"N20240410S0009 copy.fits", "N20240410S0010.fits"}
    list_path = tmp_path / "file_list.txt"
    lines = list_path.read_text().splitlines()
    # a person's edit in a text editor: the copy set to BAD
    lines = [re.sub(r'"SCIENCE"', '"BAD"', ln) if ln.startswith('"N20240410S0009 copy.fits"') else ln for ln in lines]
    list_path.write_text("\n".join(lines) + "\n")
    kept = sort_night(instrument, tmp_path, redo=False)
    types = dict(zip(kept["File"], kept["Type"], strict=True))
    assert types == {"N20240410S0009 copy.fits": "BAD", "N20240410S0010.fits": "SCIENCE"}
    assert "r_G0303" in list(kept["Filter"]) or "r_G0303" in list(table["Filter"])


def test_old_whitespace_lists_are_still_read(tmp_path):
    path = tmp_path / "file_list.txt"
    path.write_text("File Target TargType Filter Amp Binning Exp Type CalType Time Reason\n"
                    "a.fits SN SN_r_12_2x2 r 12 2x2 60.0 SCIENCE sci_r_12_2x2 60400.1 -\n")
    table = read_file_list(path)
    assert list(table["File"]) == ["a.fits"] and table["Exp"][0] == 60.0
    assert list(table["Coadds"]) == [1]  # lists without the column: one coadd
