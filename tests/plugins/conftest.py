"""Fixtures of the plugin tests (the import of plugin_helpers sets up ``sys.path``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits
from plugin_helpers import PACKAGES, load_settings

from potpyri_core.settings import InstrumentSettings
from potpyri_core.stages.classify import classify
from tests.support.required import in_ci


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """In CI, a skipped plugin test (a plugin or real file missing) is a failure."""
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail") and call.when in ("setup", "call"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI: {report.longrepr}"


@pytest.fixture(scope="session")
def instrument():
    """Return ``instrument(name)``: the validated settings of a plugin instrument, by name or alias."""
    everything: dict[str, InstrumentSettings] = {}
    for package in PACKAGES.values():
        everything.update(load_settings(package))
    aliases = {a.upper(): s for s in everything.values() for a in s.aliases}

    def find(name: str) -> InstrumentSettings:
        return everything.get(name.upper()) or aliases[name.upper()]

    return find


@pytest.fixture()
def classify_header(instrument):
    """Return ``run(name, cards)``: classify a header built from ``cards`` with instrument ``name``."""

    def run(name: str, cards: dict, file: str = "x.fits"):
        return classify(instrument(name), fits.Header(cards), Path(file))

    return run
