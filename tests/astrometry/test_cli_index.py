"""``potpyri index build`` from a saved Gaia table (no network)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from potpyri_core.cli import main
from potpyri_core.plugins import PluginManager
from potpyri_core.simulate.astrometry_frames import simulate_frame
from potpyri_core.stages import astrometry_net

pytest.importorskip("potpyri_gemini")


@pytest.mark.skipif(not astrometry_net.available(), reason="build-astrometry-index not installed (Debian astrometry.net)")
def test_index_build_from_saved_gaia_table(tmp_path):
    sim = simulate_frame(PluginManager().instrument("GMOS-N"), 3, n_gaia=12)
    table = sim.reference.copy()
    table.rename_column("mag_G", "phot_g_mean_mag")
    table["ref_epoch"] = 2026.0
    table.write(tmp_path / "gaia.ecsv")
    result = CliRunner().invoke(main, ["index", "build", "12:20:00", "+30:00:00", "3", "--catalog",
                                       str(tmp_path / "gaia.ecsv"), "--out", str(tmp_path / "idx"),
                                       "--field-arcmin", "2.75", "--epoch", "2026.0"])
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "idx").glob("index-*.fits"))
    assert "index files" in result.output
