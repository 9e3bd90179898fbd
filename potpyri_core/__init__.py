"""potpyri core: plugin framework for reducing optical and infrared imaging."""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("potpyri-core")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

#: Marker for hook implementations in plugins (``@hookimpl``).
hookimpl = pluggy.HookimplMarker("potpyri")

__all__ = ["__version__", "hookimpl"]
