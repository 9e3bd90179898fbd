"""Saved catalogs given with ``--catalog`` are remembered for ``--stages`` re-runs."""

from __future__ import annotations

import json

from potpyri_core.catalogs.given import catalogs_for_run, given_path, remember_catalogs, remembered_catalogs
from potpyri_core.options import STAGES


def test_given_catalogs_are_remembered_and_used_by_a_partial_rerun(tmp_path):
    gaia, ps1 = tmp_path / "gaia.ecsv", tmp_path / "ps1.ecsv"
    gaia.write_text("x")
    ps1.write_text("x")
    night = tmp_path / "night"
    assert catalogs_for_run(night, (gaia, ps1), STAGES) == (gaia, ps1)
    record = json.loads(given_path(night).read_text())
    assert record["catalogs"] == [str(gaia.resolve()), str(ps1.resolve())]
    assert given_path(night) == night / "red" / "catalogs" / "given.json"
    assert catalogs_for_run(night, (), ("photometry",)) == (gaia.resolve(), ps1.resolve())
    assert catalogs_for_run(night, (), STAGES) == ()  # a full run without --catalog goes online


def test_a_new_catalog_replaces_the_remembered_ones(tmp_path):
    first, second = tmp_path / "a.fits", tmp_path / "b.fits"
    first.write_text("x")
    second.write_text("x")
    remember_catalogs(tmp_path, [first])
    catalogs_for_run(tmp_path, (second,), ("astrometry",))
    assert remembered_catalogs(tmp_path) == (second.resolve(),)


def test_nothing_remembered_when_absent_unreadable_or_gone(tmp_path, caplog):
    assert remembered_catalogs(tmp_path) == ()
    given_path(tmp_path).parent.mkdir(parents=True)
    given_path(tmp_path).write_text("{not json")
    assert remembered_catalogs(tmp_path) == ()
    assert "unreadable" in caplog.text
    gone = tmp_path / "deleted.ecsv"
    gone.write_text("x")
    remember_catalogs(tmp_path, [gone])
    gone.unlink()
    assert remembered_catalogs(tmp_path) == ()
    assert "deleted.ecsv" in caplog.text and "pass --catalog again" in caplog.text
