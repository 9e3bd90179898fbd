"""Test-only potpyri plugin providing the made-up single-HDU instrument TESTCAM.

The instrument is data (``instruments/testcam.toml``); the one step that differs (its sky)
and its extra stage (``column_pattern``) are in :mod:`potpyri_testscope.hooks`, which the
core calls only when TESTCAM is reduced.
"""

from potpyri_core.api import instruments_hook

__version__ = "0.0.1"

potpyri_instruments = instruments_hook(__name__)
