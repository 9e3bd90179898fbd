"""Quick unit tests per science step: every expectation is computed in the test itself."""

from __future__ import annotations

import pytest

from tests.support.required import in_ci


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """In CI, a skipped unit test is a failure: nothing here may pass by not running."""
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail") and call.when in ("setup", "call"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI: {report.longrepr}"
