"""A user's mistake is one line naming the path or instrument and what to do, exit code 2, no
traceback, no empty log."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from potpyri_core.cli import main
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.instrument_night import simulate_instrument_night
from tests.support.required import require_module

require_module("potpyri_gemini")


def _run(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    return result


def _one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize("command", ["reduce", "sort"])
def test_empty_folder(tmp_path, command):
    line = _one_error_line(_run(command, "GMOS-N", str(tmp_path)))
    assert str(tmp_path) in line and "no raw files matching *.fits" in line
    assert all(log.stat().st_size > 0 for log in tmp_path.rglob("*.log"))  # the traceback, at DEBUG


def test_folder_of_non_fits_files_names_each_bad_file(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "image.fits").write_text("not FITS either")
    result = _run("reduce", "GMOS-N", str(tmp_path))
    assert result.exit_code == 1
    assert "image.fits" in result.output and "BAD" in result.output and "not reduced: image.fits" in result.output
    assert "no SCIENCE frames of GMOS-N" in result.output


def test_instrument_without_simulation_format(tmp_path):
    pm = PluginManager()
    without = sorted(e.settings.name for e in pm.instruments().values() if e.settings.simulation is None)
    if not without:
        pytest.skip("every installed instrument can be simulated")
    line = _one_error_line(_run("simulate", without[0], str(tmp_path / "night")))
    assert f"{without[0]} cannot be simulated yet" in line and "GMOS-N" in line


def test_unknown_instrument_lists_the_installed_ones(tmp_path):
    line = _one_error_line(_run("reduce", "NOSUCHCAM", str(tmp_path)))
    assert "unknown instrument 'NOSUCHCAM'; installed:" in line and "GMOS-N" in line
    assert "pip install potpyri-gemini" not in line  # installed already: never offered


def test_bad_parameter_override(tmp_path):
    line = _one_error_line(_run("reduce", "GMOS-N", str(tmp_path), "-p", "cosmic_rays.sigclp=4"))
    assert "step cosmic_rays has no parameter 'sigclp'" in line


@pytest.fixture(scope="module")
def south_night(tmp_path_factory):
    root = tmp_path_factory.mktemp("south")
    pm = PluginManager()
    simulate_instrument_night(pm, pm.instrument("GMOS-S"), root, seed=2, binning=4, n_science=1, n_flats=0,
                              n_bias=0, compression="none")
    return root


def test_potpyri_instrument_name_gmos_is_resolved_from_the_headers(south_night):
    assert PluginManager().instrument("GMOS", south_night).name == "GMOS-S"
    result = _run("sort", "GMOS", str(south_night))
    assert result.exit_code == 0 and "SCIENCE 1" in result.output.replace("  ", " ").replace("  ", " ")


def test_gmos_without_raw_files_asks_which(tmp_path):
    line = _one_error_line(_run("sort", "GMOS", str(tmp_path)))
    assert "'GMOS' is GMOS-N or GMOS-S" in line


def test_unknown_target_lists_the_targets_present(south_night):
    result = _run("reduce", "GMOS-S", str(south_night), "--target", "NOSUCH", "--stages", "sort")
    assert result.exit_code == 1 and "no SCIENCE frames of target NOSUCH" in result.output
    assert "targets present: SIMFIELD" in result.output
