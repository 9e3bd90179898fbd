"""The ``potpyri`` command: reduce, sort, instruments, simulate, catalogs."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from potpyri_core import __version__
from potpyri_core.cli_catalogs import catalogs
from potpyri_core.cli_index import index
from potpyri_core.options import STAGES, RunOptions
from potpyri_core.params import CORE_STEPS
from potpyri_core.plugins import PluginManager, UnknownInstrumentError


def _fail(message: str) -> None:
    """One line on stderr and exit code 2: a user's mistake or an unusable input, no traceback."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _instrument(pm: PluginManager, name: str, data_path: Path | None = None):
    try:
        return pm.instrument(name, data_path)
    except UnknownInstrumentError as exc:
        _fail(str(exc))


USER_ERRORS = (FileNotFoundError, NotADirectoryError, PermissionError)
"""Exceptions that mean the input or the folder is wrong, reported in one line."""


def _warn_problems(pm: PluginManager) -> None:
    for problem in pm.problems:
        click.echo(f"warning: {problem}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="potpyri")
def main() -> None:
    """potpyri: automatic reduction of optical and infrared imaging."""


@main.command()
def instruments() -> None:
    """List installed plugins, their instruments and versions."""
    pm = PluginManager()
    entries = pm.instruments()
    _warn_problems(pm)
    if not entries:
        click.echo("no instruments installed: pip install potpyri-gemini (or -keck, -mmt, -magellan)")
        return
    click.echo(f"{'instrument':<12}{'aliases':<40}{'plugin':<20}version")
    for name in sorted(entries):
        entry = entries[name]
        aliases = ", ".join(entry.settings.aliases)
        click.echo(f"{entry.settings.name:<12}{aliases[:39]:<40}{entry.plugin:<20}{entry.version}")


@main.command()
@click.argument("instrument")
@click.argument("data_path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--file-list-name", default="file_list.txt", show_default=True, help="Name of the file list.")
@click.option("--proc", default=2, show_default=True, help="Processes used to read headers.")
def sort(instrument: str, data_path: Path, file_list_name: str, proc: int) -> None:
    """Classify the raw files of DATA_PATH and write file_list.txt (raw files are only read)."""
    from potpyri_core.filelist import sort_night

    pm = PluginManager()
    settings = _instrument(pm, instrument, data_path)
    _warn_problems(pm)
    try:
        table = sort_night(settings, data_path, file_list_name, redo=True, workers=proc, plugins=pm.spec)
    except USER_ERRORS as exc:
        _fail(str(exc))
    for kind in sorted(set(table["Type"])):
        click.echo(f"{kind:<8}{int((table['Type'] == kind).sum())}")
    click.echo(f"wrote {data_path / file_list_name}")


def _default(name: str) -> str:
    """The run option's default, for the help text (RunOptions holds the only defaults)."""
    return f" (default {RunOptions.model_fields[name].default})"


def _param_default(step: str, name: str) -> str:
    return f" (default {CORE_STEPS[step].model_fields[name].default}; the {step}.{name} parameter)"


@main.command()
@click.argument("instrument")
@click.argument("data_path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--target", default=None, help="Reduce only this target (calibrations are always used).")
@click.option("--workers", "--proc", "workers", type=int, default=None,
              help="Local worker processes (the frame is the unit of parallelism)." + _default("workers"))
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Send per-frame jobs to the workers of this dask.distributed scheduler (pip install"
              " 'potpyri-core[dask]'; workers need the night's folder at the same path).")
@click.option("--threads", type=int, default=None,
              help="OpenMP/BLAS threads per job (default: cores / workers locally, 1 on a dask cluster).")
@click.option("--include-bad", is_flag=True, help="Also reduce frames classified BAD or SPEC.")
@click.option("--no-redo-sort", is_flag=True, help="Reuse file_list.txt as it is (keeps a person's edits).")
@click.option("--file-list-name", default=None, help="Name of the file list." + _default("file_list_name"))
@click.option("--phot-sn-min", type=float, default=None, help="Lowest S/N of zero-point stars."
              + _param_default("photometry", "sn_min"))
@click.option("--phot-sn-max", type=float, default=None, help="Highest S/N of zero-point stars."
              + _param_default("photometry", "sn_max"))
@click.option("--fwhm-init", type=float, default=None, help="First guess of the FWHM (pixels)."
              + _param_default("photometry", "fwhm_init"))
@click.option("--skip-skysub", is_flag=True, help="Do not subtract the sky.")
@click.option("--skip-fringe", is_flag=True, help="Do not subtract fringes (bands the instrument marks).")
@click.option("--skip-flatten", is_flag=True, help="Do not divide by a flat.")
@click.option("--skip-cr", is_flag=True, help="Do not flag cosmic rays.")
@click.option("--skip-gaia", is_flag=True, help="Keep the header WCS (no astrometric solution).")
@click.option("--fieldcenter", nargs=2, type=float, default=None, help="RA DEC (deg) of the stack centre.")
@click.option("--out-size", type=int, default=None, help="Side of the stack in unbinned pixels.")
@click.option("--stages", multiple=True, help=f"Run only these stages (repeat): {', '.join(STAGES)}, and any"
              " stage a plugin adds.")
@click.option("--catalog", "catalogs", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Saved catalog (FITS/CSV/ECSV, VizieR or Gaia-archive columns) instead of a query; repeat.")
@click.option("--force", is_flag=True, help="Redo every product, even those that are up to date.")
@click.option("-p", "--param", "params", multiple=True, metavar="STEP.NAME=VALUE",
              help="Set a step parameter, e.g. -p cosmic_rays.sigclip=4.5 (repeat; see docs/plugins.md).")
def reduce(instrument: str, data_path: Path, **kw) -> None:
    """Reduce the night in DATA_PATH taken with INSTRUMENT (products in DATA_PATH/red)."""
    from potpyri_core.dask_executor import SchedulerUnreachableError
    from potpyri_core.params import ParameterError, overrides_from_cli
    from potpyri_core.pipeline import Pipeline, ProductsNotWritableError, setup_logging
    from potpyri_core.runlock import DirectoryBusyError

    pm = PluginManager()
    settings = _instrument(pm, instrument, data_path)
    if not kw["catalogs"]:
        pm.catalog_sources()  # catalog problems (nothing installed, unknown names) are warned up front
    _warn_problems(pm)
    try:
        layer = overrides_from_cli(_option_params(kw) + list(kw["params"]))
    except ParameterError as exc:
        _fail(str(exc))
    given = {
        "target": kw["target"], "workers": kw["workers"], "scheduler": kw["scheduler"], "threads": kw["threads"],
        "file_list_name": kw["file_list_name"],
        "fieldcenter": kw["fieldcenter"] or None, "out_size": kw["out_size"], "stages": tuple(kw["stages"]) or None,
    }
    options = RunOptions(
        **{k: v for k, v in given.items() if v is not None}, include_bad=kw["include_bad"],
        redo_sort=not kw["no_redo_sort"], skip_skysub=kw["skip_skysub"], skip_fringe=kw["skip_fringe"],
        skip_flatten=kw["skip_flatten"],
        skip_cr=kw["skip_cr"], skip_gaia=kw["skip_gaia"], catalogs=tuple(kw["catalogs"]), params=layer,
        force=kw["force"],
    )
    try:
        pipeline = Pipeline(settings, data_path, options, pm)
    except (ParameterError, ValueError) as exc:
        _fail(str(exc))
    try:
        log_path = setup_logging(data_path / "red", settings.name)
        summary = pipeline.run()
    except (ProductsNotWritableError, DirectoryBusyError, SchedulerUnreachableError, *USER_ERRORS) as exc:
        logging.getLogger("potpyri").debug("stopped", exc_info=True)
        _fail(str(exc))
    click.echo(summary.table())
    for path in summary.stacks:
        click.echo(f"stack: {path}")
    click.echo(f"log: {log_path}")
    if summary.failures:
        sys.exit(1)


def _option_params(kw: dict) -> list[str]:
    """POTPyRI's named options as parameter overrides (``--fwhm-init`` sets the first FWHM
    guess of both astrometry and photometry)."""
    pairs = [("phot_sn_min", ["photometry.sn_min"]), ("phot_sn_max", ["photometry.sn_max"]),
             ("fwhm_init", ["photometry.fwhm_init", "astrometry.fwhm_init"])]
    return [f"{target}={kw[option]}" for option, targets in pairs if kw[option] is not None for target in targets]


@main.command()
@click.argument("instrument")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=1, show_default=True, help="Random seed (same seed, same night).")
@click.option("--binning", default=None, type=int,
              help="On-chip binning (default 2, NIR arrays 1; 4 makes a small, fast night).")
@click.option("--n-darks", default=3, show_default=True)
@click.option("--n-science", default=5, show_default=True)
@click.option("--n-flats", default=3, show_default=True)
@click.option("--n-bias", default=3, show_default=True)
@click.option("--band", default="r", show_default=True)
@click.option("--exptime", default=120.0, show_default=True, help="Science exposure (s).")
@click.option("--fwhm", default=0.8, show_default=True, help="Seeing FWHM (arcsec).")
@click.option("--compression", type=click.Choice(["none", "gz", "bz2"]), default=None,
              help="Raw-file compression [default: as the instrument's archive delivers].")
def simulate(instrument: str, outdir: Path, **kw) -> None:
    """Simulate a raw night of INSTRUMENT in OUTDIR, with its truth and reference catalogs."""
    from potpyri_core.simulate.instrument_night import simulate_instrument_night

    pm = PluginManager()
    settings = _instrument(pm, instrument)
    if settings.simulation is None:
        _fail(f"{settings.name} cannot be simulated yet: its settings have no [simulation] section"
              f" (instruments that can: {', '.join(sorted(e.settings.name for e in pm.instruments().values() if e.settings.simulation))})")
    paths = simulate_instrument_night(pm, settings, outdir, **kw)
    click.echo(f"simulated {settings.name} night in {outdir}")
    for key, value in paths.items():
        if isinstance(value, list):
            click.echo(f"  {key}: {len(value)} files" + (f" ({value[0].name} ...)" if value else ""))
        else:
            click.echo(f"  {key}: {value}")


main.add_command(catalogs)
main.add_command(index)

if __name__ == "__main__":
    main()
