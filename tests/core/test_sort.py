"""Sorting a night of GMOS-N files: file_list.txt, BAD rows with reasons, read-only raw files, CLI."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from potpyri_core.cli import main
from potpyri_core.filelist import COLUMNS, read_file_list, select, sort_night
from potpyri_core.plugins import PluginManager

# the file cut inside its primary header makes astropy warn before it raises
pytestmark = pytest.mark.filterwarnings("ignore:Error validating header:astropy.io.fits.verify.VerifyWarning")

POTPYRI_COLUMNS = ["File", "Target", "TargType", "Filter", "Amp", "Binning", "Exp", "Type", "CalType", "Time"]


@pytest.fixture(scope="module")
def gmos():
    return PluginManager().instrument("GMOS-N")


def gmos_hdus(gmos, kind: str, target: str = "SN2024abc", exptime: float | None = 60.0, mjd: float = 60400.1,
              band: str = "r", instrume: str | None = None, compressed: bool = False) -> fits.HDUList:
    """A GMOS-N raw frame: the TOML's simulation cards in the primary header, 12 tiny SCI extensions."""
    sim = gmos.simulation
    primary = fits.PrimaryHDU()
    primary.header.update(sim.primary)
    primary.header.update(sim.kinds[kind])
    if kind != "bias":
        primary.header["OBJECT"] = target if kind == "science" else sim.kinds[kind]["OBJECT"]
        primary.header["FILTER2"] = sim.filter_names[band]
    else:
        primary.header["FILTER2"] = "open2-8"
    if exptime is not None:
        primary.header["EXPTIME"] = exptime
    if instrume is not None:
        primary.header["INSTRUME"] = instrume
    primary.header["MJD-OBS"] = mjd
    primary.header["DATE-OBS"] = "2024-04-10"
    primary.header["TIME-OBS"] = "02:24:00.0"
    hdus = [primary]
    for extver in range(1, 13):
        header = fits.Header(sim.extension)
        header.update({"EXTVER": extver, "CCDSUM": "2 2", "GAIN": 1.6, "RDNOISE": 4.2})
        data = np.full((4, 4), 1000, dtype=np.uint16)
        hdus.append(fits.CompImageHDU(data, header=header) if compressed else fits.ImageHDU(data, header=header))
    return fits.HDUList(hdus)


def write(hdul: fits.HDUList, path: Path) -> Path:
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(_bytes(hdul)))
    elif path.name.endswith(".bz2"):
        path.write_bytes(bz2.compress(_bytes(hdul)))
    else:
        hdul.writeto(path)
    return path


def _bytes(hdul: fits.HDUList) -> bytes:
    from io import BytesIO

    buf = BytesIO()
    hdul.writeto(buf)
    return buf.getvalue()


@pytest.fixture()
def night(gmos, tmp_path) -> Path:
    """A small GMOS-N night: calibrations, science of two targets, every compression, bad files."""
    d = tmp_path / "raw"
    d.mkdir()
    write(gmos_hdus(gmos, "bias", exptime=0.0, mjd=60400.01), d / "N20240410S0001.fits")
    write(gmos_hdus(gmos, "bias", exptime=0.0, mjd=60400.02), d / "N20240410S0002.fits.gz")
    write(gmos_hdus(gmos, "flat", exptime=5.0, mjd=60400.03), d / "N20240410S0003.fits.bz2")
    write(gmos_hdus(gmos, "science", mjd=60400.10), d / "N20240410S0004.fits")
    write(gmos_hdus(gmos, "science", mjd=60400.11, compressed=True), d / "N20240410S0005.fits.fz")
    write(gmos_hdus(gmos, "science", target="M31", mjd=60400.12), d / "N20240410S0006.fits.gz")
    write(gmos_hdus(gmos, "science", exptime=None, mjd=60400.13), d / "N20240410S0007.fits")
    write(gmos_hdus(gmos, "science", instrume="GMOS-S", mjd=60400.14), d / "S20240410S0008.fits")
    full = _bytes(gmos_hdus(gmos, "science", mjd=60400.15))
    (d / "N20240410S0009.fits").write_bytes(full[:1000])  # cut inside the primary header
    (d / "x.fits").write_text("this is not a FITS file\n")
    (d / "notes.txt").write_text("observing log\n")
    return d


def sha256s(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def row(table, file: str):
    files = list(table["File"])
    assert file in files, files
    return table[files.index(file)]


def test_file_list_has_the_potpyri_columns_and_types(gmos, night):
    table = sort_night(gmos, night)
    assert table.colnames == COLUMNS == POTPYRI_COLUMNS + ["Reason", "Coadds"]  # Coadds: NIR darks
    text = (night / "file_list.txt").read_text().splitlines()
    assert text[0] == "# %ECSV 1.0"
    rows = [line for line in text if not line.startswith("#")]
    assert rows[0].split() == POTPYRI_COLUMNS + ["Reason", "Coadds"]
    assert len(rows) == 1 + 10  # notes.txt is not a FITS file name: not listed
    types = dict(zip(table["File"], table["Type"], strict=True))
    assert types == {
        "N20240410S0001.fits": "BIAS", "N20240410S0002.fits.gz": "BIAS", "N20240410S0003.fits.bz2": "FLAT",
        "N20240410S0004.fits": "SCIENCE", "N20240410S0005.fits.fz": "SCIENCE", "N20240410S0006.fits.gz": "SCIENCE",
        "N20240410S0007.fits": "BAD", "S20240410S0008.fits": "BAD", "N20240410S0009.fits": "BAD", "x.fits": "BAD",
    }
    sci = row(table, "N20240410S0005.fits.fz")
    assert (sci["Target"], sci["Filter"], sci["Amp"], sci["Binning"], sci["Exp"]) == ("SN2024abc", "r", "12", "2x2", 60.0)
    assert sci["TargType"] == "SN2024abc_r_12_2x2" and sci["CalType"] == "sci_r_12_2x2"
    assert sci["Time"] == pytest.approx(60400.11)
    assert row(table, "N20240410S0002.fits.gz")["CalType"] == "bias_12_2x2"
    assert row(table, "N20240410S0003.fits.bz2")["CalType"] == "flat_r_12_2x2"
    assert row(table, "N20240410S0004.fits")["Reason"] == "-"
    # the table read back from the text file is the same table
    back = read_file_list(night / "file_list.txt")
    assert list(back["File"]) == list(table["File"]) and list(back["Type"]) == list(table["Type"])
    assert list(back["CalType"]) == list(table["CalType"])


def test_bad_rows_say_why(gmos, night):
    table = sort_night(gmos, night)
    reasons = {f: r for f, r, t in zip(table["File"], table["Reason"], table["Type"], strict=True) if t == "BAD"}
    assert reasons["N20240410S0007.fits"] == (
        "N20240410S0007.fits: missing keyword for the exposure time: expected one of EXPTIME"
    )
    assert reasons["S20240410S0008.fits"] == "instrument keyword INSTRUME='GMOS-S' is not GMOS-N"
    assert reasons["N20240410S0009.fits"] == "N20240410S0009.fits: truncated inside the header of HDU 0 (no END card)"
    assert reasons["x.fits"] == "x.fits: not a FITS file (no SIMPLE card at the start)"


def test_file_truncated_in_its_data_is_bad(gmos, tmp_path):
    full = _bytes(gmos_hdus(gmos, "science"))
    (tmp_path / "N20240410S0010.fits").write_bytes(full[: len(full) - 2880])
    (tmp_path / "N20240410S0011.fits").write_bytes(full[: 2880 * 3])  # primary + 1 of 12 extensions
    table = sort_night(gmos, tmp_path)
    assert list(table["Type"]) == ["BAD", "BAD"], list(table["Reason"])
    assert list(table["Reason"]) == [
        "N20240410S0010.fits: truncated: 0 of 32 data bytes in HDU 12",
        "N20240410S0011.fits: 1 image extensions, GMOS-N writes 12 (incomplete file)",
    ]


def test_raw_files_are_not_modified_moved_or_deleted(gmos, night):
    before = sha256s(night)
    sort_night(gmos, night)
    sort_night(gmos, night, redo=False)
    after = sha256s(night)
    assert set(after) == set(before) | {"file_list.txt"}
    assert {name: after[name] for name in before} == before
    assert not list(night.glob("*.tmp"))


def _set_type(list_path: Path, file: str, new_type: str) -> None:
    """A person's edit in a text editor: the Type on the file's line replaced, alignment lost."""
    lines = list_path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f'"{file}"'):
            lines[i] = re.sub(r'"(SCIENCE|FLAT|BIAS|DARK|SPEC|BAD)"\s+', f'"{new_type}" ', line, count=1)
    list_path.write_text("\n".join(lines) + "\n")


def test_no_redo_sort_keeps_a_persons_edit(gmos, night):
    sort_night(gmos, night)
    list_path = night / "file_list.txt"
    _set_type(list_path, "N20240410S0004.fits", "BAD")
    kept = sort_night(gmos, night, redo=False)
    assert row(kept, "N20240410S0004.fits")["Type"] == "BAD"
    assert "N20240410S0004.fits" not in list(select(kept)["File"])
    assert "N20240410S0004.fits" in list(select(kept, include_bad=True)["File"])
    redone = sort_night(gmos, night, redo=True)
    assert row(redone, "N20240410S0004.fits")["Type"] == "SCIENCE"


def test_file_list_name_is_honoured(gmos, night):
    sort_night(gmos, night, file_list_name="night1.txt")
    assert (night / "night1.txt").exists() and not (night / "file_list.txt").exists()


def test_select_target_keeps_calibrations(gmos, night):
    table = sort_night(gmos, night)
    chosen = select(table, target="M31")
    assert sorted(zip(chosen["File"], chosen["Type"], strict=True)) == [
        ("N20240410S0001.fits", "BIAS"), ("N20240410S0002.fits.gz", "BIAS"),
        ("N20240410S0003.fits.bz2", "FLAT"), ("N20240410S0006.fits.gz", "SCIENCE"),
    ]
    everything = select(table)
    assert sorted(everything["Type"]) == ["BIAS", "BIAS", "FLAT", "SCIENCE", "SCIENCE", "SCIENCE"]
    assert len(select(table, include_bad=True)) == 10


def test_empty_folder_is_an_error(gmos, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no raw files matching \*\.fits, "):
        sort_night(gmos, tmp_path)


def test_two_workers_give_the_same_table(gmos, night, tmp_path):
    many = tmp_path / "many"
    many.mkdir()
    sources = sorted(night.iterdir())
    for i in range(70):  # the process pool is used from 64 files on
        src = sources[i % len(sources)]
        if src.name != "notes.txt":
            shutil.copy(src, many / f"{i:03d}_{src.name}")
    one = sort_night(gmos, many, workers=1)
    two = sort_night(gmos, many, workers=2)
    assert len(one) == 64 and one.pformat(max_lines=-1, max_width=-1) == two.pformat(max_lines=-1, max_width=-1)


# ---------------------------------------------------------------- CLI
def test_cli_sort(night):
    result = CliRunner().invoke(main, ["sort", "GMOS-N", str(night), "--proc", "1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    counts = {line.split()[0]: int(line.split()[1]) for line in lines if not line.startswith(("wrote", "warning"))}
    assert counts == {"BAD": 4, "BIAS": 2, "FLAT": 1, "SCIENCE": 3}
    assert lines[-1] == f"wrote {night / 'file_list.txt'}"


def test_cli_sort_accepts_an_alias_in_any_case(night):
    result = CliRunner().invoke(main, ["sort", "Gmos-North", str(night), "--proc", "1", "--file-list-name", "l.txt"])
    assert result.exit_code == 0, result.output
    assert (night / "l.txt").exists()


def test_cli_unknown_instrument_is_a_usage_error_listing_installed(tmp_path):
    result = CliRunner().invoke(main, ["reduce", "NOPE", str(tmp_path)])
    assert result.exit_code == 2
    assert "error: unknown instrument 'NOPE'; installed: " in result.output
    installed = result.output.split("installed: ")[1].split(".")[0].split(", ")
    assert {"GMOS-N", "GMOS-S", "F2"} <= set(installed)
    assert "potpyri-keck" not in result.output  # installed: never offered
    assert not (tmp_path / "red").exists()


def test_cli_help_lists_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("instruments", "sort", "reduce", "simulate"):
        assert f"  {command}" in result.output


REDUCE_OPTIONS = ["--target", "--proc", "--include-bad", "--no-redo-sort", "--file-list-name", "--phot-sn-min",
                  "--phot-sn-max", "--fwhm-init", "--skip-skysub", "--fieldcenter", "--out-size", "--stages",
                  "--skip-flatten", "--skip-cr", "--skip-gaia", "--catalog"]


def test_cli_reduce_help_has_every_potpyri_option():
    result = CliRunner().invoke(main, ["reduce", "--help"])
    assert result.exit_code == 0
    missing = [opt for opt in REDUCE_OPTIONS if f"{opt} " not in result.output]
    assert missing == []


def test_cli_sort_help_has_its_options():
    result = CliRunner().invoke(main, ["sort", "--help"])
    assert result.exit_code == 0
    assert "--file-list-name" in result.output and "--proc" in result.output
