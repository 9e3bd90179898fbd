"""potpyri plugin for Magellan (Las Campanas) instruments (IMACS, FourStar).

The instruments are described as data: one TOML file per instrument in the
``instruments`` folder of this package. The core reads them through the
``potpyri_instruments`` hook below and validates them with
:class:`potpyri_core.settings.InstrumentSettings`.
"""

from potpyri_core import hookimpl
from potpyri_core.settings import settings_from_package

__version__ = "0.1.0"


@hookimpl
def potpyri_instruments():
    """Return the raw settings of every instrument of this plugin (one mapping per TOML file)."""
    return settings_from_package(__name__)
