"""Test-only potpyri plugin providing the made-up instrument TESTCAM."""

from potpyri_core import hookimpl
from potpyri_core.settings import settings_from_package

__version__ = "0.0.1"


@hookimpl
def potpyri_instruments():
    """Return the raw settings of TESTCAM (read from ``instruments/testcam.toml``)."""
    return settings_from_package(__name__)
