"""Saved catalog files (``--catalog``): formats, column names, epochs, Vega to AB."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from potpyri_core.catalogs.columns import at_epoch
from potpyri_core.catalogs.local import LocalCatalog, read_catalog_file


def _vizier_gaia() -> Table:
    return Table({"RA_ICRS": [150.0, 150.01], "DE_ICRS": [2.2, 2.21], "pmRA": [100.0, -20.0],
                  "pmDE": [-50.0, 0.0], "Gmag": [15.0, 18.5]})


def _archive_gaia() -> Table:
    return Table({"source_id": [1, 2], "ra": [150.0, 150.01], "dec": [2.2, 2.21], "pmra": [100.0, -20.0],
                  "pmdec": [-50.0, 0.0], "ref_epoch": [2016.0, 2016.0], "phot_g_mean_mag": [15.0, 18.5]})


def _vizier_ps1() -> Table:
    return Table({"RAJ2000": [150.0], "DEJ2000": [2.2], "gmag": [18.0], "e_gmag": [0.01], "rmag": [17.5],
                  "e_rmag": [0.01], "imag": [17.3], "e_imag": [0.01], "zmag": [17.2], "e_zmag": [0.02],
                  "ymag": [17.1], "e_ymag": [0.03]})


def _vizier_2mass() -> Table:
    return Table({"RAJ2000": [150.0], "DEJ2000": [2.2], "Jmag": [14.0], "e_Jmag": [0.02], "Hmag": [13.5],
                  "e_Hmag": [0.02], "Kmag": [13.3], "e_Kmag": [0.03]})


@pytest.mark.parametrize("suffix, fmt", [(".ecsv", "ascii.ecsv"), (".csv", "ascii.csv"), (".fits", "fits")])
@pytest.mark.parametrize("make", [_vizier_gaia, _archive_gaia])
def test_gaia_files_in_every_format_and_naming(tmp_path, suffix, fmt, make):
    path = tmp_path / f"gaia{suffix}"
    make().write(path, format=fmt)
    table = read_catalog_file(path)
    assert list(table["ra"]) == [150.0, 150.01]
    assert list(table["mag_G"]) == [15.0, 18.5]
    assert list(table["ref_epoch"]) == [2016.0, 2016.0]
    # 10 years of 100 mas/yr in RA at dec 2.2 deg: 1 arcsec / cos(dec)
    ra, dec = at_epoch(table, 2026.0)
    assert (ra[0] - 150.0) * 3600 * np.cos(np.radians(2.2)) == pytest.approx(1.0, rel=1e-6)
    assert (dec[0] - 2.2) * 3600 == pytest.approx(-0.5, rel=1e-6)


def test_ps1_bands_and_errors(tmp_path):
    path = tmp_path / "ps1.csv"
    _vizier_ps1().write(path, format="ascii.csv")
    catalog = LocalCatalog([path])
    assert catalog.bands == ["g", "i", "r", "y", "z"]
    table = catalog.photometric("r")
    assert table["mag_r"][0] == 17.5 and table["err_r"][0] == 0.01
    assert catalog.photometric("J") is None


def test_astrometric_table_is_the_gaia_one(tmp_path):
    _vizier_ps1().write(tmp_path / "ps1.ecsv", format="ascii.ecsv")
    _vizier_gaia().write(tmp_path / "gaia.ecsv", format="ascii.ecsv")
    catalog = LocalCatalog([tmp_path / "ps1.ecsv", tmp_path / "gaia.ecsv"])
    assert "mag_G" in catalog.astrometric().colnames


def test_twomass_vega_magnitudes_become_ab(tmp_path):
    path = tmp_path / "2mass.fits"
    _vizier_2mass().write(path, format="fits")
    catalog = LocalCatalog([path])
    offsets = {"J": 0.91, "H": 1.39, "K": 1.85}
    assert catalog.photometric("K", offsets)["mag_K"][0] == pytest.approx(13.3 + 1.85)
    assert catalog.photometric("J", offsets)["mag_J"][0] == pytest.approx(14.0 + 0.91)
    with pytest.raises(ValueError, match="Vega"):
        catalog.photometric("H", {})
    # converting one band does not change the stored table
    assert catalog.tables[0]["mag_K"][0] == pytest.approx(13.3)


def test_file_without_positions_names_the_file(tmp_path):
    path = tmp_path / "bad.csv"
    Table({"x": [1.0], "y": [2.0]}).write(path, format="ascii.csv")
    with pytest.raises(ValueError, match=r"bad\.csv: no position columns"):
        read_catalog_file(path)


def test_unreadable_file_names_the_file(tmp_path):
    path = tmp_path / "broken.fits"
    path.write_bytes(b"not a fits file")
    with pytest.raises(ValueError, match=r"broken\.fits: cannot read catalog"):
        read_catalog_file(path)


def _identified(catalog: str | None, rmag: float) -> Table:
    table = _vizier_ps1()
    table["rmag"] = [rmag]
    if catalog:
        table.meta["catalog"] = catalog
    return table


def test_zero_point_file_is_picked_by_the_catalog_the_settings_name(tmp_path):
    """Identity travels in the table meta (ECSV meta, FITS CATALOG card); the file of the
    catalog the settings name wins, an unnamed file is the fallback, another survey's is not used."""
    from potpyri_core.settings import ZeroPointCatalogs
    _identified("sdss", 17.1).write(tmp_path / "sdss.ecsv", format="ascii.ecsv")
    _identified("ps1", 17.5).write(tmp_path / "ps1.fits", format="fits")
    _identified(None, 17.9).write(tmp_path / "mine.csv", format="ascii.csv")
    settings = ZeroPointCatalogs(north={"u": "sdss", "r": "ps1", "V": {"catalog": "ps1", "transform": "tonry2012"},
                                        "i": "skymapper"},
                                 south={"r": "skymapper"})
    files = [tmp_path / "sdss.ecsv", tmp_path / "mine.csv", tmp_path / "ps1.fits"]
    catalog = LocalCatalog(files, settings)
    assert catalog.photometric("r").meta["catalog"] == "ps1"
    assert catalog.photometric("V")["mag_r"][0] == 17.5  # g and r of PS1 for Tonry's V
    assert catalog.photometric("u") is None  # no u column anywhere
    assert catalog.photometric("i")["mag_r"][0] == 17.9  # no SkyMapper file: the unnamed one
    assert LocalCatalog(files[:1], settings).photometric("r") is None  # SDSS is not PS1
    assert LocalCatalog(files).photometric("r")["mag_r"][0] == 17.1  # no settings: the first file


def test_y_band_from_twomass_j_and_h(tmp_path):
    """Y = J + 0.610 (J - H) (VIRCAM transformation, Vega) + 0.600 (VISTA Y, AB - Vega)."""
    path = tmp_path / "2mass.fits"
    _vizier_2mass().write(path, format="fits")
    catalog = LocalCatalog([path])
    offsets = {"J": 0.91, "H": 1.39, "K": 1.85, "Y": 0.600}
    y = catalog.photometric("Y", offsets)
    assert y["mag_Y"][0] == pytest.approx(14.0 + 0.610 * 0.5 + 0.600)
    assert y["err_Y"][0] == pytest.approx(np.hypot(1.610 * 0.02, 0.610 * 0.02))
    assert y["mag_J"][0] == pytest.approx(14.0)  # J stays Vega in the Y table
    with pytest.raises(ValueError, match="Vega"):
        catalog.photometric("Y", {"J": 0.91})  # no Y offset: refused, never used as AB
    assert "mag_Y" not in catalog.tables[0].colnames
    # a catalog without H (or not Vega 2MASS) has no Y
    no_h = _vizier_2mass()
    del no_h["Hmag"], no_h["e_Hmag"]
    no_h.write(tmp_path / "no_h.fits", format="fits")
    assert LocalCatalog([tmp_path / "no_h.fits"]).photometric("Y", offsets) is None
