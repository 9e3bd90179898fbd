"""The installed catalog sources, and the checks that the instruments' catalog names exist.

:class:`~potpyri_core.plugins.PluginManager` hands every plugin's answer to the
``potpyri_catalog_sources`` hook to :func:`collect_sources` and the instruments to
:func:`check_instrument_catalogs`; each problem found is one line in its ``problems``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from potpyri_core.catalogs.online import ASTROMETRIC_SOURCE, NO_SOURCES_HINT

if TYPE_CHECKING:
    from potpyri_core.plugins import InstrumentEntry

#: What a catalog source must have (see the ``potpyri_catalog_sources`` hookspec).
SOURCE_ATTRIBUTES = ("name", "bands", "query")


def _missing_attributes(source: Any) -> list[str]:
    return [a for a in SOURCE_ATTRIBUTES if not hasattr(source, a)]


def collect_sources(answers: Iterable[tuple[str, Callable[[], Iterable[Any] | None]]]) -> tuple[dict[str, Any], list[str]]:
    """Catalog sources by lower-case name from every plugin's hook implementation.

    Parameters
    ----------
    answers : iterable of (str, callable)
        Per plugin: its distribution name and its ``potpyri_catalog_sources`` function.

    Returns
    -------
    sources : dict
        Lower-case name -> source; for a name two plugins provide, the first plugin's.
    problems : list of str
        One line per plugin whose hook failed, per object that is not a catalog source and
        per name provided twice (naming both plugins and the one kept).
    """
    sources: dict[str, Any] = {}
    owner: dict[str, str] = {}
    problems: list[str] = []
    for plugin, function in answers:
        try:
            provided = list(function() or [])
        except Exception as exc:
            problems.append(f"plugin {plugin}: potpyri_catalog_sources failed: {type(exc).__name__}: {exc}")
            continue
        for source in provided:
            missing = _missing_attributes(source)
            if missing:
                problems.append(f"plugin {plugin}: catalog source {type(source).__name__} has no "
                                f"{', '.join(missing)}; ignored")
                continue
            key = str(source.name).lower()
            if key in sources:
                problems.append(f"plugin {plugin}: catalog source {key!r} is already provided by {owner[key]};"
                                f" keeping {owner[key]}'s")
                continue
            sources[key] = source
            owner[key] = plugin
    return sources, problems


def instrument_catalog_names(entry: InstrumentEntry) -> dict[str, list[str]]:
    """Catalog source names an instrument's settings use -> the settings that use them.

    Parameters
    ----------
    entry : InstrumentEntry
        A validated instrument.

    Returns
    -------
    dict
        E.g. ``{"ps1": ["zeropoint.north.g", "zeropoint.north.r"], "skymapper": [...]}``.
    """
    zeropoint = entry.settings.zeropoint
    names: dict[str, list[str]] = {}
    for side, mapping in (("north", zeropoint.north), ("south", zeropoint.south)):
        for band, source in mapping.items():
            names.setdefault(source.catalog.lower(), []).append(f"zeropoint.{side}.{band}")
    return names


def check_instrument_catalogs(instruments: Mapping[str, InstrumentEntry], sources: Mapping[str, Any]) -> list[str]:
    """Problem lines for catalog names that no installed source answers.

    Parameters
    ----------
    instruments : mapping
        The validated instruments (``PluginManager.instruments()``).
    sources : mapping
        Installed catalog sources by lower-case name (:func:`collect_sources`).

    Returns
    -------
    list of str
        With no source installed at all, one line saying what to install; otherwise one
        line for the astrometric source (``gaia``) if it is missing and one per instrument
        and unknown zero-point catalog name, with the settings that use it.
    """
    if not sources:
        return [NO_SOURCES_HINT]
    installed = ", ".join(sorted(sources))
    problems = []
    if ASTROMETRIC_SOURCE not in sources:
        problems.append(f"astrometry needs the catalog source {ASTROMETRIC_SOURCE!r}, which no installed plugin"
                        f" provides (installed: {installed}); pip install potpyri-catalogs or pass --catalog FILE")
    for key in sorted(instruments):
        entry = instruments[key]
        for name, where in sorted(instrument_catalog_names(entry).items()):
            if name not in sources:
                problems.append(f"plugin {entry.plugin}, instrument {entry.settings.name}: catalog {name!r}"
                                f" ({', '.join(where)}) is not provided by any installed source"
                                f" (installed: {installed})")
    return problems
