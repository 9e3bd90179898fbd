"""Test-only potpyri plugin whose only instrument (BROKENCAM) has two wrong settings."""

from potpyri_core import hookimpl
from potpyri_core.settings import settings_from_package


@hookimpl
def potpyri_instruments():
    """Return the raw (invalid) settings of BROKENCAM."""
    return settings_from_package(__name__)
