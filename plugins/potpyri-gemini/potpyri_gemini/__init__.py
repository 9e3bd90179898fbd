"""potpyri plugin for Gemini Observatory instruments (GMOS-N, GMOS-S, Flamingos-2).

The instruments are described as data: one TOML file per instrument in the
``instruments`` folder of this package. The core reads them through the
``potpyri_instruments`` hook below and validates them with
:class:`potpyri_core.settings.InstrumentSettings`.
"""

from potpyri_core.plugins import instruments_hook

__version__ = "0.1.0"

potpyri_instruments = instruments_hook(__name__)
