"""``potpyri catalogs``: list the installed catalog sources, fill the catalog cache before a night."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from astropy.coordinates import SkyCoord

from potpyri_core.catalogs.cache import SITE_CACHE_ENV, CatalogCache, CatalogUnavailableError, site_cache_dir
from potpyri_core.catalogs.online import NO_SOURCES_HINT
from potpyri_core.plugins import PluginManager


def _sources(pm: PluginManager) -> dict[str, Any]:
    sources = pm.catalog_sources()
    for problem in pm.problems:
        click.echo(f"warning: {problem}", err=True)
    return sources


def fetch_bands(source: Any, wanted: tuple[str, ...]) -> list[str | None]:
    """The bands to fetch for ``source``: ``[None]`` (one answer for every band) when its answer
    does not depend on the band, else the ``wanted`` bands it has (all of its bands if none).

    Parameters
    ----------
    source : object
        A catalog source.
    wanted : tuple of str
        The ``--band`` options (empty: all).
    """
    if not getattr(source, "band_dependent", True):
        return [None]
    return [b for b in source.bands if not wanted or b in wanted]


@click.group()
def catalogs() -> None:
    """Reference catalog sources and the catalog cache."""


@catalogs.command("list")
def list_sources() -> None:
    """List the installed catalog sources, their bands and the cache directories."""
    pm = PluginManager()
    sources = _sources(pm)
    if not sources:
        click.echo(NO_SOURCES_HINT)
        return
    click.echo(f"{'source':<12}{'bands':<14}description")
    for name in sorted(sources):
        source = sources[name]
        click.echo(f"{name:<12}{' '.join(source.bands):<14}{getattr(source, 'description', '')}")
    site = site_cache_dir()
    click.echo(f"site cache (${SITE_CACHE_ENV}): {site if site is not None else 'not set'}")


@catalogs.command(context_settings={"ignore_unknown_options": True})  # a negative DEC is not an option
@click.argument("ra", type=float)
@click.argument("dec", type=float)
@click.argument("radius", type=float)
@click.option("--catalog", "names", multiple=True, help="Source to fetch (repeat; default: every installed one).")
@click.option("--band", "bands", multiple=True, help="Band to fetch (repeat; default: every band of the source).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Cache to fill (default: ${SITE_CACHE_ENV}).")
def fetch(ra: float, dec: float, radius: float, names: tuple[str, ...], bands: tuple[str, ...],
          cache_dir: Path | None) -> None:
    """Fetch the catalogs within RADIUS arcmin of RA DEC (deg) into the cache, before a night.

    Reductions read the site cache named by $POTPYRI_CATALOG_CACHE; point it (or a night's
    DATA_PATH/red/catalogs) at the directory filled here.
    """
    directory = cache_dir or site_cache_dir()
    if directory is None:
        raise click.UsageError(f"no cache directory: pass --cache-dir DIR or set {SITE_CACHE_ENV}")
    if radius <= 0:
        raise click.BadParameter("must be > 0 (arcmin)", param_hint="RADIUS")
    sources = _sources(PluginManager())
    if not sources:
        raise click.ClickException(NO_SOURCES_HINT)
    unknown = [n for n in names if n.lower() not in sources]
    if unknown:
        raise click.UsageError(f"unknown catalog {', '.join(unknown)}; installed: {', '.join(sorted(sources))}")
    cache = CatalogCache(directory)
    center = SkyCoord(ra, dec, unit="deg")
    failed = 0
    click.echo(f"filling {directory} for RA={ra:.5f} Dec={dec:+.5f} r={radius:g}'")
    for name in [n.lower() for n in names] or sorted(sources):
        source = sources[name]
        for band in fetch_bands(source, bands):
            label = f"{name} {band or 'all bands'}"
            try:
                click.echo(f"{label:<22}{cache.fill(source, center, radius, band).summary()}")
            except CatalogUnavailableError as exc:
                failed += 1
                click.echo(f"{label:<22}failed: {exc}", err=True)
    if failed:
        raise click.ClickException(f"{failed} catalog(s) not fetched; run again when the network is back")
