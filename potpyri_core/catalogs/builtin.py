"""Built-in plugin that provides the online VizieR catalog sources.

Registered by the plugin manager as a built-in plugin; it answers the
``potpyri_catalog_sources`` provide hook with Gaia DR3, PS1, SDSS DR16, SkyMapper DR4 and
2MASS (see :mod:`potpyri_core.catalogs.vizier`).
"""

from __future__ import annotations

from potpyri_core import hookimpl
from potpyri_core.catalogs.vizier import BUILTIN_SOURCES, VizierSource


@hookimpl
def potpyri_catalog_sources() -> list[VizierSource]:
    """Provide the VizieR sources ``gaia``, ``ps1``, ``sdss``, ``skymapper`` and ``twomass``."""
    return list(BUILTIN_SOURCES)
