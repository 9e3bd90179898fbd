"""The online catalog sources come only with the potpyri-catalogs distribution: checked in a
fresh, isolated venv (built as in ``tests/core/test_plugins_isolated.py``).

First the venv holds potpyri-core and potpyri-gemini only: no online source is listed, and
``catalogs list``/``catalogs fetch`` say what to install. Then potpyri-catalogs is installed
and its five sources are listed, with no problem line.
"""

from __future__ import annotations

import pytest

from potpyri_core.catalogs.online import NO_SOURCES_HINT
from tests.core.test_plugins_isolated import ROOT, Venv, warning_lines

SOURCES = ["gaia", "ps1", "sdss", "skymapper", "twomass"]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Venv:
    v = Venv(tmp_path_factory.mktemp("isolated_catalogs"))
    v.create()
    v.install(ROOT, ["potpyri_core"], editable=True)
    v.install(ROOT / "plugins" / "potpyri-gemini", ["potpyri_gemini"], editable=True)
    return v


@pytest.fixture(scope="module")
def venv_catalogs(venv) -> Venv:
    venv.install(ROOT / "plugins" / "potpyri-catalogs", ["potpyri_catalogs"], editable=True)
    return venv


# ---------------------------------------------------------------- tests (file order matters)
def test_without_the_catalog_plugin_no_online_source_is_listed(venv):
    result = venv.potpyri("catalogs", "list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == NO_SOURCES_HINT
    assert warning_lines(result.stderr) == [f"warning: {NO_SOURCES_HINT}"]
    assert "pip install potpyri-catalogs" in NO_SOURCES_HINT and "--catalog FILE" in NO_SOURCES_HINT


def test_fetch_without_the_catalog_plugin_says_what_to_install(venv):
    result = venv.potpyri("catalogs", "fetch", "150", "2", "5", "--cache-dir", str(venv.root / "cache"))
    assert result.returncode == 1
    assert f"Error: {NO_SOURCES_HINT}" in result.stderr
    assert not (venv.root / "cache").exists()


def test_reduce_without_the_catalog_plugin_warns_what_to_install(venv):
    night = venv.root / "night"
    night.mkdir()
    result = venv.potpyri("reduce", "GMOS-N", str(night))
    assert warning_lines(result.stderr) == [f"warning: {NO_SOURCES_HINT}"], result.stderr
    given = venv.root / "gaia.ecsv"
    given.write_text("# saved catalog\n")
    result = venv.potpyri("reduce", "GMOS-N", str(night), "--catalog", str(given))
    assert warning_lines(result.stderr) == []  # saved catalogs need no plugin


def test_instruments_still_list_cleanly_without_catalogs(venv):
    result = venv.potpyri("instruments")
    assert result.returncode == 0 and warning_lines(result.stderr) == []


def test_with_the_catalog_plugin_its_sources_are_listed(venv_catalogs):
    result = venv_catalogs.potpyri("catalogs", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["source", "bands", "description"]
    assert [line.split()[0] for line in lines[1:-1]] == SOURCES
    assert warning_lines(result.stderr) == []
