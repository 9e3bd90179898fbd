"""Every instrument TOML of every plugin validates, and the plugin packaging is consistent."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest
from plugin_helpers import PACKAGES, ROOT, load_settings

from potpyri_core.settings import InstrumentSettings, settings_from_package

EXPECTED = {
    "potpyri_keck": {"LRIS", "DEIMOS", "MOSFIRE"},
    "potpyri_gemini": {"GMOS-N", "GMOS-S", "F2"},
    "potpyri_mmt": {"BINOSPEC", "MMIRS"},
    "potpyri_magellan": {"IMACS", "FOURSTAR"},
}


@pytest.mark.parametrize("package", sorted(EXPECTED))
def test_every_toml_validates(package):
    settings = load_settings(package)
    assert set(settings) == EXPECTED[package]
    for s in settings.values():
        assert isinstance(s, InstrumentSettings)
        assert s.identifies(s.instrument_values[0].lstrip("="))


@pytest.mark.parametrize("package", sorted(EXPECTED))
def test_hook_returns_the_package_settings(package):
    module = importlib.import_module(package)
    raw = module.potpyri_instruments()
    assert [r["_source"] for r in raw] == [r["_source"] for r in settings_from_package(package)]
    assert all(r["_source"].startswith(f"{package}/instruments/") for r in raw)


@pytest.mark.parametrize("dist", sorted(PACKAGES))
def test_pyproject_entry_point_and_package_data(dist):
    data = tomllib.loads((ROOT / "plugins" / f"potpyri-{dist}" / "pyproject.toml").read_text())
    project = data["project"]
    assert project["name"] == f"potpyri-{dist}"
    assert project["version"] == "0.1.0"
    assert "potpyri-core" in project["dependencies"]
    assert project["entry-points"]["potpyri"] == {dist: f"potpyri_{dist}"}
    assert data["tool"]["setuptools"]["package-data"][f"potpyri_{dist}"] == ["instruments/*.toml"]


SHARED_ALIASES = {"GMOS": {"GMOS-N", "GMOS-S"}}
"""POTPyRI's names for instrument families: resolved from the raw headers (tests/core/test_cli_errors.py)."""


def test_names_and_aliases_are_unique_case_insensitively():
    seen: dict[str, set[str]] = {}
    for package in EXPECTED:
        for s in load_settings(package).values():
            for label in [s.name, *s.aliases]:
                seen.setdefault(label.upper(), set()).add(s.name)
    clashes = {label: names for label, names in seen.items() if len(names) > 1}
    assert clashes == SHARED_ALIASES


def test_instrument_values_do_not_overlap():
    everything = [s for p in EXPECTED for s in load_settings(p).values()]
    probes = ["LRISBLUE", "LRIS", "DEIMOS", "MOSFIRE", "GMOS-N", "GMOS-S", "F2", "Binospec", "MMIRS",
              "IMACS Short-Camera", "FourStar"]
    for probe in probes:
        owners = [s.name for s in everything if s.identifies(probe)]
        assert len(owners) == 1, (probe, owners)


def test_nir_instruments_use_2mass_with_ab_offsets():
    for package in EXPECTED:
        for s in load_settings(package).values():
            if s.band != "nir":
                assert s.params.get("sky", {}).get("method", "2d") == "2d"
                continue
            assert s.params["sky"]["method"] == "dither"
            # Y where the instrument has a Y filter, made from 2MASS J and H (columns.twomass_y)
            has_y = "Y" in (s.simulation.filter_names if s.simulation else {})
            assert set(s.zeropoint.north) == {"J", "H", "K"} | ({"Y"} if has_y else set()), s.name
            assert {z.catalog for z in s.zeropoint.north.values()} == {"twomass"}
            assert s.zeropoint.vega_to_ab == {"J": 0.91, "H": 1.39, "K": 1.85, "Y": 0.600}


def test_gmos_amplifier_layout(instrument):
    for name in ("GMOS-N", "GMOS-S"):
        s = instrument(name)
        amps = s.detector.amplifiers
        assert [a.hdu for a in amps] == list(range(1, 13))
        assert [a.ccd for a in amps] == [0] * 4 + [1] * 4 + [2] * 4
        for a in amps:
            if a.hdu % 2:
                assert (a.datasec, a.biassec) == ("[1:512,1:4224]", "[513:576,1:4224]")
            else:
                assert (a.datasec, a.biassec) == ("[65:576,1:4224]", "[1:64,1:4224]")
            assert 1.5 < a.gain < 2.0 and 3.0 < a.readnoise < 5.0
        assert amps[-1].detsec == "[5633:6144,1:4224]"
        assert s.keywords.merge_ext == 1 and s.detector.saturation_adu == 65535
    assert instrument("GMOS-N").detector.ccd_offsets == [(-67.95, -0.21739), (0.0, 0.0), (67.48, 0.1727)]
    # per-amp gains of templates/gmos-n_amps.json
    assert [a.gain for a in instrument("GMOS-N").detector.amplifiers][:2] == [1.681, 1.633]


def test_every_file_under_instruments_is_toml():
    for dist in PACKAGES:
        folder = Path(ROOT / "plugins" / f"potpyri-{dist}" / f"potpyri_{dist}" / "instruments")
        assert sorted(p.suffix for p in folder.iterdir()) == [".toml"] * len(EXPECTED[f"potpyri_{dist}"])
