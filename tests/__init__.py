"""The tests of potpyri (a package so that ``tests.support`` imports under plain ``pytest`` too)."""
