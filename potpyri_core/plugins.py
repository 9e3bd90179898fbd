"""Plugin manager: discovers plugins through entry points and validates their instruments.

Plugins register under the entry-point group ``potpyri``. Nothing is imported until the
first time the manager is asked for something (lazy loading). A plugin that fails to
import, or whose instrument settings do not validate, is reported as one line naming the
distribution and the problem; the other plugins keep working.
"""

from __future__ import annotations

import difflib
import importlib
import sys
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
from pydantic import ValidationError

from potpyri_core import hookspecs
from potpyri_core.settings import InstrumentSettings

ENTRY_POINT_GROUP = "potpyri"

HOOK_NAMES = frozenset(name for name in dir(hookspecs) if name.startswith("potpyri_"))
"""Names of every hook the core defines."""

def instruments_hook(package: str) -> Any:
    """The ``potpyri_instruments`` hook implementation of an instrument plugin whose
    instruments are the TOML files in ``<package>/instruments/``.

    A plugin module needs only ``potpyri_instruments = instruments_hook(__name__)``.
    """
    from potpyri_core import hookimpl
    from potpyri_core.settings import settings_from_package

    def potpyri_instruments() -> list[dict[str, Any]]:
        return settings_from_package(package)

    potpyri_instruments.__doc__ = f"Raw settings of the instruments in {package}/instruments/*.toml."
    return hookimpl(potpyri_instruments)


def plugin_index() -> dict[str, dict[str, list[str]]]:
    """Return the published plugin distributions with their ``instruments`` and ``aliases``
    (for hints only)."""
    text = (resources.files("potpyri_core") / "data" / "plugin_index.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)["plugins"]


class UnknownInstrumentError(LookupError):
    """Raised when no installed plugin provides the requested instrument."""


@dataclass
class InstrumentEntry:
    """A validated instrument and the plugin distribution that provides it."""

    settings: InstrumentSettings
    plugin: str
    version: str


@dataclass(frozen=True)
class PluginSpec:
    """A picklable description of a plugin set, so that every process (pool workers, dask
    workers) rebuilds the same plugins: the entry points, plus the caller's extra plugins
    by module name (importable modules) or by value (picklable objects)."""

    use_entry_points: bool = True
    extras: tuple[Any, ...] = ()

    def build(self) -> PluginManager:
        """A plugin manager with this plugin set."""
        extras = [importlib.import_module(e) if isinstance(e, str) else e for e in self.extras]
        return PluginManager(extra_plugins=extras, use_entry_points=self.use_entry_points)


def _describe(plugin: Any) -> Any:
    """A plugin as :class:`PluginSpec` keeps it: an importable module by name, else itself."""
    if isinstance(plugin, ModuleType):
        if sys.modules.get(plugin.__name__) is plugin:
            return plugin.__name__
        raise TypeError(f"plugin module {plugin.__name__!r} is not importable (not in sys.modules): worker"
                        " processes could not load it; put it in an importable module")
    return plugin


class InstrumentHooks:
    """The hook relay for one instrument: every hook called through it sees the core's
    defaults, the plugins that are not instrument plugins (e.g. catalogs, caller-registered
    plugins), the distribution that provides the instrument, and the instrument's own
    ``hooks`` module; other instrument plugins are left out, so no plugin has to test which
    instrument it is called for."""

    def __init__(self, pm: pluggy.PluginManager, excluded: list[Any]) -> None:
        self._pm = pm
        self._excluded = excluded
        self._callers: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._callers:
            if name not in HOOK_NAMES:
                raise AttributeError(f"no potpyri hook named {name}")
            self._callers[name] = self._pm.subset_hook_caller(name, remove_plugins=self._excluded)
        return self._callers[name]


@dataclass
class PluginManager:
    """Loads potpyri plugins and answers questions about instruments and catalog sources.

    Parameters
    ----------
    extra_plugins : list
        Modules or objects with hook implementations to register in addition to the entry
        points (used by tests and by embedding applications).
    use_entry_points : bool
        Discover installed plugins through the ``potpyri`` entry-point group.
    """

    extra_plugins: list[Any] = field(default_factory=list)
    use_entry_points: bool = True
    problems: list[str] = field(default_factory=list)
    _pm: pluggy.PluginManager | None = None
    _instruments: dict[str, InstrumentEntry] | None = None
    _sources: dict[str, Any] | None = None
    _dists: dict[str, tuple[str, str]] = field(default_factory=dict)
    _provides: dict[str, set[str]] = field(default_factory=dict)
    _instrument_hooks: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> PluginSpec:
        """The picklable description of this plugin set (see :class:`PluginSpec`)."""
        return PluginSpec(self.use_entry_points, tuple(_describe(p) for p in self.extra_plugins))

    @property
    def hook(self) -> Any:
        """The pluggy hook relay (loads the plugins on first use)."""
        return self._manager().hook

    def _manager(self) -> pluggy.PluginManager:
        if self._pm is None:
            from potpyri_core import defaults

            pm = pluggy.PluginManager("potpyri")
            pm.add_hookspecs(hookspecs)
            pm.register(defaults, name="potpyri-core")
            self._dists[str(id(defaults))] = ("potpyri-core", _dist_version("potpyri-core"))
            for number, plugin in enumerate(self.extra_plugins):
                name = getattr(plugin, "__name__", type(plugin).__name__)
                self._register(pm, plugin, name if pm.get_plugin(name) is None else f"{name}#{number}", "dev")
            if self.use_entry_points:
                for ep in entry_points(group=ENTRY_POINT_GROUP):
                    self._load_entry_point(pm, ep)
            try:
                pm.check_pending()
            except pluggy.PluginValidationError as exc:
                self.problems.append(f"plugin {exc.plugin}: {exc}")
            self._pm = pm
        return self._pm

    def _load_entry_point(self, pm: pluggy.PluginManager, ep: EntryPoint) -> None:
        dist = ep.dist.name if ep.dist is not None else ep.value
        version = ep.dist.version if ep.dist is not None else "?"
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not break the others
            self.problems.append(f"plugin {dist} ({ep.value}) failed to load: {type(exc).__name__}: {exc}")
            return
        self._register(pm, plugin, dist, version)

    def _register(self, pm: pluggy.PluginManager, plugin: Any, dist: str, version: str) -> None:
        for attr in dir(plugin):
            if attr.startswith("potpyri_") and attr not in HOOK_NAMES and hasattr(getattr(plugin, attr), "potpyri_impl"):
                close = difflib.get_close_matches(attr, HOOK_NAMES, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self.problems.append(f"plugin {dist}: {attr} is not a potpyri hook{hint}; it will never be called")
        try:
            pm.register(plugin, name=dist)
        except Exception as exc:
            self.problems.append(f"plugin {dist} could not be registered: {type(exc).__name__}: {exc}")
            return
        self._dists[str(id(plugin))] = (dist, version)

    # ------------------------------------------------------------------ instruments
    def instruments(self) -> dict[str, InstrumentEntry]:
        """Return the valid instruments of all plugins, keyed by upper-case name."""
        if self._instruments is None:
            pm = self._manager()
            found: dict[str, InstrumentEntry] = {}
            for impl in pm.hook.potpyri_instruments.get_hookimpls():
                dist, version = self._dists.get(str(id(impl.plugin)), (impl.plugin_name, "?"))
                try:
                    raw_list = impl.function()
                except Exception as exc:
                    self.problems.append(f"plugin {dist}: potpyri_instruments failed: {type(exc).__name__}: {exc}")
                    continue
                self._provides.setdefault(impl.plugin_name, set())
                for raw in raw_list or []:
                    entry = self._validate(raw, dist, version)
                    if entry is None:
                        continue
                    if entry.settings.hooks and not self._load_instrument_hooks(pm, entry):
                        continue
                    key = entry.settings.name.upper()
                    if key in found:
                        self.problems.append(
                            f"plugin {dist}: instrument {entry.settings.name} is already provided by"
                            f" {found[key].plugin}; keeping {found[key].plugin}'s"
                        )
                        continue
                    found[key] = entry
                    self._provides[impl.plugin_name].add(key)
            self._instruments = found
        return self._instruments

    def _load_instrument_hooks(self, pm: pluggy.PluginManager, entry: InstrumentEntry) -> bool:
        """Import and register an instrument's own ``hooks`` module (False on a problem)."""
        name = entry.settings.hooks
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            self.problems.append(f"plugin {entry.plugin}, instrument {entry.settings.name}: hooks module {name}"
                                 f" failed to import: {type(exc).__name__}: {exc}")
            return False
        plugin_name = f"{entry.plugin}:{entry.settings.name}"
        before = len(self.problems)
        self._register(pm, module, plugin_name, entry.version)
        if len(self.problems) > before and pm.get_plugin(plugin_name) is None:
            return False
        self._instrument_hooks[entry.settings.name.upper()] = module
        return True

    def for_instrument(self, name: str) -> InstrumentHooks:
        """The hooks to call when reducing instrument ``name`` (see :class:`InstrumentHooks`)."""
        key = self.instrument(name).name.upper()
        pm = self._manager()
        excluded = [pm.get_plugin(plugin) for plugin, names in self._provides.items() if names and key not in names]
        excluded += [module for other, module in self._instrument_hooks.items() if other != key]
        return InstrumentHooks(pm, [p for p in excluded if p is not None])

    def _validate(self, raw: dict[str, Any], dist: str, version: str) -> InstrumentEntry | None:
        raw = dict(raw)
        source = raw.pop("_source", "?")
        name = raw.get("name", "?")
        try:
            settings = InstrumentSettings.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "(settings)"
                self.problems.append(
                    f"plugin {dist}, instrument {name} ({source}): setting '{where}': {err['msg']}"
                    f" (got {err.get('input')!r})"
                )
            return None
        return InstrumentEntry(settings=settings, plugin=dist, version=version)

    def instrument(self, name: str, data_path: Path | None = None) -> InstrumentSettings:
        """Find an instrument by name or alias, case-insensitively.

        A name several instruments answer to (POTPyRI's ``GMOS`` for GMOS-N and GMOS-S) is
        resolved from the instrument keyword of the raw files in ``data_path``.

        Raises
        ------
        UnknownInstrumentError
            With the installed instruments and, for a known one, the plugin to install.
        """
        wanted = name.strip().upper()
        found = [entry.settings for key, entry in self.instruments().items()
                 if wanted == key or wanted in [a.upper() for a in entry.settings.aliases]]
        if len(found) == 1:
            return found[0]
        if found:
            return _from_headers(name, found, data_path)
        installed = ", ".join(sorted(self.instruments())) or "none"
        message = f"unknown instrument {name!r}; installed: {installed}."
        index = plugin_index()
        loaded = {d for d, _ in self._dists.values()}
        for dist, names in index.items():
            if wanted in names["instruments"] + names["aliases"]:
                if dist not in loaded:
                    message += f" {name} is provided by the {dist} plugin: pip install {dist}"
                else:
                    message += f" {dist} is installed but does not provide {name}: see the plugin problems below"
                break
        else:
            rest = ", ".join(f"{d} ({', '.join(n['instruments'])})" for d, n in index.items() if d not in loaded)
            if rest:
                message += f" Plugins for other instruments: {rest}."
        if self.problems:
            message += " Plugin problems: " + " | ".join(self.problems)
        raise UnknownInstrumentError(message)

    def versions(self) -> dict[str, str]:
        """Distribution name -> version of every registered plugin (provenance)."""
        self._manager()
        return {dist: version for dist, version in self._dists.values()}

    # ------------------------------------------------------------------ catalogs
    def catalog_sources(self) -> dict[str, Any]:
        """Return all catalog sources by lower-case name; a name provided twice, and a catalog
        name in the instrument settings that no source provides, are lines in ``problems``."""
        if self._sources is None:
            from potpyri_core.catalogs.registry import check_instrument_catalogs, collect_sources

            answers = [(self._dists.get(str(id(impl.plugin)), (impl.plugin_name, "?"))[0], impl.function)
                       for impl in self._manager().hook.potpyri_catalog_sources.get_hookimpls()]
            self._sources, problems = collect_sources(answers)
            self.problems += problems + check_instrument_catalogs(self.instruments(), self._sources)
        return self._sources


def _from_headers(name: str, candidates: list[InstrumentSettings], data_path: Path | None,
                  max_files: int = 20) -> InstrumentSettings:
    """The one of ``candidates`` whose instrument keyword the raw files of ``data_path`` carry."""
    from potpyri_core.filelist import find_raw_files
    from potpyri_core.rawio import RawReadError, read_headers

    names = " or ".join(c.name for c in candidates)
    if data_path is None:
        raise UnknownInstrumentError(f"{name!r} is {names}: name one of them")
    seen = set()
    for path in find_raw_files(Path(data_path), candidates[0].raw_glob)[:max_files]:
        try:
            headers = read_headers(path)
        except (RawReadError, OSError):
            continue
        for c in candidates:
            header = headers.hdus[c.keywords.header_ext].header if len(headers.hdus) > c.keywords.header_ext else {}
            value = next((str(header[k]) for k in c.keywords.instrument if k in header), "")
            if value and c.identifies(value):
                seen.add(c.name)
    if len(seen) == 1:
        return next(c for c in candidates if c.name in seen)
    found = f"the raw files say {', '.join(sorted(seen))}" if seen else "no raw file there says which"
    raise UnknownInstrumentError(f"{name!r} is {names} and {found} ({data_path}): name one of them")


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "dev"


_PROCESS_PLUGINS: dict[PluginSpec, PluginManager] = {}


def plugins_for(spec: PluginSpec) -> PluginManager:
    """The plugin manager of this process for ``spec``, built on first use (a plugin manager
    is not sent between processes: workers rebuild it from its picklable spec)."""
    if spec not in _PROCESS_PLUGINS:
        _PROCESS_PLUGINS[spec] = spec.build()
    return _PROCESS_PLUGINS[spec]
