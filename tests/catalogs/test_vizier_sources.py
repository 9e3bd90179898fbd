"""VizieR catalog sources against a local stand-in for VizieR's ``viz-bin/votable`` endpoint.

The server (:mod:`tests.support.fake_vizier`) runs on 127.0.0.1 (random free port) in a
thread, and answers the plain-text query script astroquery POSTs (``-source``, ``-out``,
``-c``, ``-c.rm``, column constraints) with a VOTable shaped like VizieR's: one RESOURCE
holding one TABLE named after the catalog id, with the real VizieR column names and units
of the synthetic tables below, rows cut to the requested cone and constraints. Every query
goes through the real astroquery client; nothing leaves the machine.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table

from potpyri_core.catalogs.cache import CatalogUnavailableError
from potpyri_core.catalogs.columns import normalise
from potpyri_core.plugins import PluginManager
from tests.support import fake_vizier as fake_vizier_module
from tests.support.fake_vizier import FakeVizier

potpyri_catalogs = pytest.importorskip("potpyri_catalogs")

from potpyri_catalogs.sources import gaia, ps1, sdss, skymapper, twomass
from potpyri_catalogs.vizier import SERVER_ENV, VizierSource

RA0, DEC0 = 150.0, 2.0
CENTER = SkyCoord(RA0, DEC0, unit="deg")
ARCMIN = 1.0 / 60.0


def _offset(dra_arcmin: float, ddec_arcmin: float) -> tuple[float, float]:
    """RA, Dec (deg) of a point offset from the field centre by arcmin on the sky."""
    return RA0 + dra_arcmin * ARCMIN / np.cos(np.radians(DEC0)), DEC0 + ddec_arcmin * ARCMIN


# Offsets (arcmin) of the synthetic stars: the first three lie within 2', the last two
# at 3' and 6'.
OFFSETS = [(0.2, 0.1), (-0.8, 0.9), (1.0, -1.2), (2.0, 2.2), (-6.0, 0.0)]
RA, DEC = (np.array(v) for v in zip(*(_offset(*o) for o in OFFSETS), strict=True))
N = len(OFFSETS)


def _mags(base: float) -> np.ndarray:
    return base + np.arange(N, dtype=float)


def _catalogs() -> dict[str, Table]:
    """Synthetic rows of each VizieR table, with VizieR's column names and units."""
    gaia_t = Table()
    gaia_t["RA_ICRS"] = RA
    gaia_t["DE_ICRS"] = DEC
    gaia_t["pmRA"] = np.linspace(-5.0, 5.0, N)
    gaia_t["pmDE"] = np.linspace(3.0, -3.0, N)
    gaia_t["Gmag"] = _mags(15.0)
    gaia_t["e_Gmag"] = np.full(N, 0.003)
    gaia_t["Source"] = np.arange(N, dtype=np.int64) + 3_000_000_000
    for col, unit in [("RA_ICRS", "deg"), ("DE_ICRS", "deg"), ("pmRA", "mas/yr"), ("pmDE", "mas/yr"),
                      ("Gmag", "mag"), ("e_Gmag", "mag")]:
        gaia_t[col].unit = unit

    ps1_t = Table()
    ps1_t["RAJ2000"] = RA
    ps1_t["DEJ2000"] = DEC
    ps1_t["objID"] = np.arange(N, dtype=np.int64) + 110_000_000_000
    for i, b in enumerate("grizy"):
        ps1_t[f"{b}mag"] = _mags(16.0 + 0.1 * i)
        ps1_t[f"e_{b}mag"] = np.full(N, 0.01)
        kron = _mags(16.0 + 0.1 * i) - 0.02
        kron[1] -= 0.5  # row 1 is a galaxy: PSF - Kron = 0.52
        ps1_t[f"{b}Kmag"] = kron
        ps1_t[f"e_{b}Kmag"] = np.full(N, 0.02)
    for col in ps1_t.colnames:
        ps1_t[col].unit = "deg" if col in ("RAJ2000", "DEJ2000") else (None if col == "objID" else "mag")

    sdss_t = Table()
    sdss_t["RA_ICRS"] = RA
    sdss_t["DE_ICRS"] = DEC
    sdss_t["class"] = np.array([6, 3, 6, 6, 6], dtype=np.int16)  # row 1: galaxy
    sdss_t["mode"] = np.array([1, 1, 2, 1, 1], dtype=np.int16)  # row 2: secondary
    for b in "ugriz":
        sdss_t[f"{b}pmag"] = _mags(17.0)
        sdss_t[f"e_{b}pmag"] = np.full(N, 0.02)
        sdss_t[f"{b}mag"] = _mags(16.9)  # model magnitudes: not the ones to use
    for col in sdss_t.colnames:
        sdss_t[col].unit = "deg" if col.endswith("_ICRS") else (None if col in ("class", "mode") else "mag")

    smss_t = Table()
    smss_t["RAICRS"] = RA
    smss_t["DEICRS"] = DEC
    smss_t["ClassStar"] = np.array([0.98, 0.97, 0.2, 0.95, 0.99])  # row 2: extended
    for b in "uvgriz":
        smss_t[f"{b}PSF"] = _mags(16.5)
        smss_t[f"e_{b}PSF"] = np.full(N, 0.02)
    for col in smss_t.colnames:
        smss_t[col].unit = "deg" if col.endswith("ICRS") else (None if col == "ClassStar" else "mag")

    tmass_t = Table()
    tmass_t["RAJ2000"] = RA
    tmass_t["DEJ2000"] = DEC
    tmass_t["Jmag"] = _mags(13.0)
    tmass_t["e_Jmag"] = np.full(N, 0.03)
    tmass_t["Hmag"] = _mags(12.5)
    tmass_t["e_Hmag"] = np.full(N, 0.03)
    tmass_t["Kmag"] = _mags(12.0)
    tmass_t["e_Kmag"] = np.full(N, 0.03)
    for col in tmass_t.colnames:
        tmass_t[col].unit = "deg" if col.endswith("J2000") else "mag"

    return {
        "I/355/gaiadr3": gaia_t,
        "II/349/ps1": ps1_t,
        "V/154/sdss16": sdss_t,
        "II/379/smssdr4": smss_t,
        "II/246/out": tmass_t,
    }


CATALOGS = _catalogs()


# ---------------------------------------------------------------------- the fake VizieR
@pytest.fixture
def fake_vizier(fake_vizier_server: Callable[[dict[str, Table]], FakeVizier]) -> FakeVizier:
    """The VizieR stand-in (``tests/support/fake_vizier.py``) serving :data:`CATALOGS`;
    the environment points the sources at it."""
    return fake_vizier_server(CATALOGS)


def _inside(radius_arcmin: float) -> np.ndarray:
    return CENTER.separation(SkyCoord(RA, DEC, unit="deg")).arcmin <= radius_arcmin


# ---------------------------------------------------------------------- sources
def test_gaia_returns_canonical_columns_at_epoch_2016(fake_vizier: FakeVizier) -> None:
    table = gaia.query(CENTER, 2.0)
    assert fake_vizier.paths == ["/viz-bin/votable"]
    query = fake_vizier.requests[0]
    assert query["-source"] == "I/355/gaiadr3"
    assert query["-out.max"] == "unlimited"
    assert set(query["-out"].split(",")) == {"RA_ICRS", "DE_ICRS", "pmRA", "pmDE", "Gmag", "e_Gmag"}
    for col in ("ra", "dec", "pmra", "pmdec", "ref_epoch", "mag_G", "err_G"):
        assert col in table.colnames
    assert len(table) == 3
    np.testing.assert_allclose(table["ref_epoch"], 2016.0)
    np.testing.assert_allclose(table["ra"], RA[:3], atol=1e-9)
    np.testing.assert_allclose(table["pmra"], CATALOGS["I/355/gaiadr3"]["pmRA"][:3])
    np.testing.assert_allclose(table["err_G"], 0.003)
    assert table.meta["source"] == "gaia"


def test_cone_radius_is_sent_and_honoured(fake_vizier: FakeVizier) -> None:
    small = gaia.query(CENTER, 2.0)
    large = gaia.query(CENTER, 4.0)
    radii = [float(q["-c.rm"]) for q in fake_vizier.requests]
    assert radii == [2.0, 4.0]
    assert fake_vizier.requests[0]["-c"] == "150.00000000+2.00000000"
    assert len(small) == _inside(2.0).sum() == 3
    assert len(large) == _inside(4.0).sum() == 4
    seps = CENTER.separation(SkyCoord(large["ra"], large["dec"], unit="deg")).arcmin
    assert np.all(seps <= 4.0)


def test_ps1_magnitudes_and_point_source_cut(fake_vizier: FakeVizier) -> None:
    table = ps1.query(CENTER, 2.0, band="r")
    query = fake_vizier.requests[0]
    assert query["-source"] == "II/349/ps1"
    assert {"rmag", "e_rmag", "rKmag"} <= set(query["-out"].split(","))
    for b in "grizy":
        assert f"mag_{b}" in table.colnames and f"err_{b}" in table.colnames
    # three stars inside 2', one of them (row 1, PSF - Kron = 0.52) a galaxy
    assert len(table) == 2
    np.testing.assert_allclose(table["mag_r"], CATALOGS["II/349/ps1"]["rmag"][[0, 2]])
    galaxy_ra = RA[1]
    assert not np.any(np.isclose(table["ra"], galaxy_ra, atol=1e-9))
    # without a band the cut uses the median over the bands: same answer
    assert len(ps1.query(CENTER, 2.0)) == 2


def test_twomass_magnitudes_are_ab(fake_vizier: FakeVizier) -> None:
    table = twomass.query(CENTER, 2.0, band="K")
    raw = CATALOGS["II/246/out"]
    np.testing.assert_allclose(table["mag_K"], raw["Kmag"][:3] + 1.85)
    np.testing.assert_allclose(table["mag_J"], raw["Jmag"][:3] + 0.91)
    np.testing.assert_allclose(table["mag_H"], raw["Hmag"][:3] + 1.39)
    np.testing.assert_allclose(table["err_K"], raw["e_Kmag"][:3])
    assert table.meta["mag_system"] == "AB"


def test_sdss_uses_psf_magnitudes_of_primary_stars(fake_vizier: FakeVizier) -> None:
    table = sdss.query(CENTER, 2.0, band="u")
    query = fake_vizier.requests[0]
    assert query["class"] == "=6" and query["mode"] == "=1"
    assert len(table) == 1  # row 1 is a galaxy, row 2 a secondary detection
    np.testing.assert_allclose(table["mag_u"], CATALOGS["V/154/sdss16"]["upmag"][0])


def test_skymapper_keeps_star_like_objects(fake_vizier: FakeVizier) -> None:
    table = skymapper.query(CENTER, 2.0, band="v")
    assert fake_vizier.requests[0]["ClassStar"] == ">0.9"
    assert len(table) == 2
    np.testing.assert_allclose(table["mag_v"], CATALOGS["II/379/smssdr4"]["vPSF"][[0, 1]])
    assert set("uvgriz") <= {c[4:] for c in table.colnames if c.startswith("mag_")}


def test_magnitude_range_is_sent_as_a_column_constraint(fake_vizier: FakeVizier) -> None:
    source = VizierSource(
        name="gaia_bright",
        title="bright Gaia stars",
        catalog="I/355/gaiadr3",
        band_columns={"G": ("Gmag", "e_Gmag")},
        position_columns=["RA_ICRS", "DE_ICRS", "pmRA", "pmDE"],
        mag_range=(10.0, 15.5),
    )
    table = source.query(CENTER, 2.0, band="G")
    assert fake_vizier.requests[0]["Gmag"] == "10..15.5"
    assert len(table) == 1


def test_empty_cone_gives_an_empty_canonical_table(fake_vizier: FakeVizier) -> None:
    table = twomass.query(SkyCoord(10.0, -40.0, unit="deg"), 1.0)
    assert len(table) == 0
    assert {"ra", "dec", "mag_K"} <= set(table.colnames)


def test_unknown_band_is_refused() -> None:
    with pytest.raises(ValueError, match="ps1 has no band 'K'"):
        ps1.query(CENTER, 2.0, band="K")


# ---------------------------------------------------------------------- failures
def test_server_error_names_source_and_suggests_catalog_file(fake_vizier: FakeVizier) -> None:
    fake_vizier.fail_status = 500
    with pytest.raises(CatalogUnavailableError) as info:
        ps1.query(CENTER, 2.0, band="r")
    message = str(info.value)
    assert message.startswith("ps1 query for RA=150.00000, Dec=+2.00000 r=2' failed:")
    assert "500" in message
    assert message.endswith("pass --catalog FILE to reduce offline")


def test_unreachable_server_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # a port nobody listens on: the connection is refused at once
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = VizierSource(
        name="twomass",
        title="2MASS",
        catalog="II/246/out",
        band_columns={"K": ("Kmag", "e_Kmag")},
        position_columns=["RAJ2000", "DEJ2000"],
        server=f"http://127.0.0.1:{port}",
        timeout=5,
    )
    with pytest.raises(CatalogUnavailableError, match=r"^twomass query for RA=.*ConnectionError.*--catalog FILE"):
        source.query(CENTER, 1.0)


def test_server_configuration() -> None:
    # bare host: astroquery's https URL; with a scheme: used as given
    assert VizierSource("x", "X", "I/1", {}, [], server="vizier.cfa.harvard.edu").client()._server_to_url() == (
        "https://vizier.cfa.harvard.edu/viz-bin/votable"
    )
    assert VizierSource("x", "X", "I/1", {}, [], server="http://127.0.0.1:8123/").client()._server_to_url() == (
        "http://127.0.0.1:8123/viz-bin/votable"
    )


def test_server_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SERVER_ENV, raising=False)
    assert gaia.client()._server_to_url().startswith("https://")
    monkeypatch.setenv(SERVER_ENV, "http://127.0.0.1:9999")
    assert gaia.client()._server_to_url() == "http://127.0.0.1:9999/viz-bin/votable"


# ---------------------------------------------------------------------- plugin and normalise
def test_plugin_provides_the_sources() -> None:
    manager = PluginManager(extra_plugins=[potpyri_catalogs], use_entry_points=False)
    sources = manager.catalog_sources()
    assert {"gaia", "ps1", "sdss", "skymapper", "twomass"} <= set(sources)
    assert sources["twomass"].bands == ["J", "H", "K"]
    assert sources["ps1"].bands == list("grizy")
    assert manager.problems == []


def test_only_the_ps1_answer_depends_on_the_band() -> None:
    assert ps1.band_dependent
    assert not any(s.band_dependent for s in (gaia, sdss, skymapper, twomass))
    assert gaia.description == "Gaia DR3 positions, proper motions and G (VizieR I/355/gaiadr3)"


def test_fake_server_and_sources_agree_on_the_environment_variable() -> None:
    assert fake_vizier_module.SERVER_ENV == SERVER_ENV


def test_normalise_gaia_archive_names() -> None:
    archive = Table(
        {
            "source_id": [1, 2],
            "ra": [10.0, 10.1],
            "dec": [-5.0, -5.1],
            "pmra": [1.5, -2.0],
            "pmdec": [0.5, 0.0],
            "ref_epoch": [2016.0, 2016.0],
            "phot_g_mean_mag": [14.0, 15.0],
        }
    )
    out = normalise(archive, "gaia-archive.csv")
    assert out.colnames == ["ra", "dec", "pmra", "pmdec", "ref_epoch", "mag_G"]
    np.testing.assert_allclose(out["mag_G"], [14.0, 15.0])
    np.testing.assert_allclose(out["ref_epoch"], 2016.0)


def test_normalise_vizier_names() -> None:
    gaia_vizier = Table({"RA_ICRS": [1.0], "DE_ICRS": [2.0], "pmRA": [3.0], "pmDE": [4.0], "Gmag": [12.0]})
    out = normalise(gaia_vizier, "vizier")
    assert out.colnames == ["ra", "dec", "pmra", "pmdec", "ref_epoch", "mag_G"]
    assert out["ref_epoch"][0] == 2016.0  # Gaia DR3 epoch when the table has none

    ps1_vizier = Table({"RAJ2000": [1.0], "DEJ2000": [2.0], "rmag": [17.0], "e_rmag": [0.01]})
    assert normalise(ps1_vizier, "ps1").colnames == ["ra", "dec", "mag_r", "err_r"]

    sdss_vizier = Table({"RA_ICRS": [1.0], "DE_ICRS": [2.0], "umag": [18.0], "e_umag": [0.05]})
    assert normalise(sdss_vizier, "sdss").colnames == ["ra", "dec", "mag_u", "err_u"]

    tmass_vizier = Table({"RAJ2000": [1.0], "DEJ2000": [2.0], "Kmag": [11.0], "e_Kmag": [0.02]})
    out = normalise(tmass_vizier, "2mass")
    assert out.colnames == ["ra", "dec", "mag_K", "err_K"]
    assert out["mag_K"][0] == 11.0  # normalise leaves Vega as it is; the source adds the offsets
