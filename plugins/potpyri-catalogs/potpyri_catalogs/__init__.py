"""potpyri plugin: online reference catalogs from VizieR (Gaia DR3, PS1, SDSS, SkyMapper, 2MASS).

Registered under the ``potpyri`` entry-point group as ``catalogs``; it answers the core's
``potpyri_catalog_sources`` provide hook with the sources of :mod:`potpyri_catalogs.sources`.
Queries go through astroquery; the core caches their answers in HEALPix tiles.
"""

from __future__ import annotations

from potpyri_catalogs.sources import SOURCES
from potpyri_catalogs.vizier import VizierSource
from potpyri_core import hookimpl

__version__ = "0.1.0"


@hookimpl
def potpyri_catalog_sources() -> list[VizierSource]:
    """Provide the VizieR sources ``gaia``, ``ps1``, ``sdss``, ``skymapper`` and ``twomass``."""
    return list(SOURCES)
