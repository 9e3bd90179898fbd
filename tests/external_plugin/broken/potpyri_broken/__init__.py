"""Test-only potpyri plugin whose only instrument (BROKENCAM) has two wrong settings."""

from potpyri_core.api import instruments_hook

potpyri_instruments = instruments_hook(__name__)
