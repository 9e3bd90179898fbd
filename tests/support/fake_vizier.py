"""A local stand-in for VizieR's ``viz-bin/votable`` endpoint, serving tables the caller gives.

:class:`FakeVizier` runs a :class:`~http.server.ThreadingHTTPServer` on 127.0.0.1 (a free
port) in a daemon thread. It answers the plain-text query script astroquery POSTs to
``/viz-bin/votable`` (``-source``, ``-out``, ``-out.max``, ``-c`` with ``-c.rd``/``-c.rm``/
``-c.rs`` or ``-c.r`` + ``-c.u``, column constraints) with a VOTable shaped like VizieR's:
one RESOURCE holding one TABLE named after the catalog id, the columns (names and units)
of the served table, rows cut to the cone and the constraints, at most ``-out.max`` of
them. Every request is recorded (:attr:`FakeVizier.requests`, :attr:`FakeVizier.n_requests`);
:attr:`FakeVizier.fail_status` makes every answer an HTTP error.

Usage::

    with FakeVizier({"I/355/gaiadr3": table}) as server:
        monkeypatch.setenv("POTPYRI_VIZIER_SERVER", server.url)
        ...

or through the ``fake_vizier_server`` fixture of ``tests/conftest.py``, which also points
the catalog sources at the server.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io.votable import from_table
from astropy.io.votable.tree import Info, Resource, VOTableFile
from astropy.table import Table

ENDPOINT = "/viz-bin/votable"
#: The environment variable the potpyri-catalogs VizieR sources read their server from.
SERVER_ENV = "POTPYRI_VIZIER_SERVER"
#: Rows VizieR returns when the query has no ``-out.max``.
DEFAULT_OUT_MAX = 50
#: Position columns looked for, in order (VizieR and Gaia-archive names).
RA_NAMES = ("RA_ICRS", "RAJ2000", "RAICRS", "RAdeg", "_RAJ2000", "ra", "RA")
DEC_NAMES = ("DE_ICRS", "DEJ2000", "DEICRS", "DEdeg", "_DEJ2000", "dec", "DEC", "Dec")
#: ``-c.u`` / ``-c.r<unit>`` -> degrees.
RADIUS_UNITS = {"d": 1.0, "deg": 1.0, "m": 1 / 60, "arcmin": 1 / 60, "s": 1 / 3600, "arcsec": 1 / 3600}


def parse_script(body: str) -> dict[str, str]:
    """Parse astroquery's VizieR query script: one ``key=value`` (or bare ``key``) per line."""
    query: dict[str, str] = {}
    for line in body.splitlines():
        if not line.strip():
            continue
        key, _, value = line.partition("=")
        query[key.strip()] = value.strip()
    return query


def _as_float(values: object) -> np.ndarray:
    """Column values as floats, masked entries as NaN (so no constraint keeps them)."""
    return np.ma.filled(np.ma.asarray(values, dtype=float), np.nan)


def constraint_mask(values: object, expr: str) -> np.ndarray:
    """Rows meeting one VizieR column constraint (``<x``, ``>x``, ``<=x``, ``>=x``, ``=x``,
    ``!=x``, ``a..b``, ``x``); null values never do."""
    values = _as_float(values)
    expr = expr.strip()
    with np.errstate(invalid="ignore"):
        if ".." in expr:
            lo, hi = (float(v) for v in expr.split(".."))
            return (values >= lo) & (values <= hi)
        for op, fn in (("<=", np.less_equal), (">=", np.greater_equal), ("!=", np.not_equal),
                       ("<", np.less), (">", np.greater), ("=", np.equal)):
            if expr.startswith(op):
                keep = fn(values, float(expr[len(op):]))
                return keep & np.isfinite(values)
        return values == float(expr)


_constraint = constraint_mask  # the name the first version of the VizieR tests used


def position_columns(table: Table) -> tuple[str, str]:
    """The RA and Dec columns of a served table (first known names, else its first two columns)."""
    ra = next((c for c in RA_NAMES if c in table.colnames), table.colnames[0])
    dec = next((c for c in DEC_NAMES if c in table.colnames), table.colnames[1])
    return ra, dec


def parse_center(value: str) -> SkyCoord:
    """``-c`` as sent by astroquery: ``150.00000000+2.00000000`` (ICRS/J2000 degrees)."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([+-])\s*([0-9.]+)\s*", value)
    if match is None:
        raise ValueError(f"unsupported -c={value!r} (only decimal RA+Dec)")
    ra, sign, dec = match.groups()
    return SkyCoord(float(ra), float(f"{sign}{dec}"), unit="deg")


def parse_radius_deg(query: Mapping[str, str]) -> float | None:
    """Cone radius (deg) from ``-c.rd``/``-c.rm``/``-c.rs`` or ``-c.r`` with ``-c.u`` (arcmin)."""
    for key, scale in (("-c.rd", 1.0), ("-c.rm", 1 / 60), ("-c.rs", 1 / 3600)):
        if key in query:
            return float(query[key]) * scale
    if "-c.r" in query:
        return float(query["-c.r"]) * RADIUS_UNITS[query.get("-c.u", "arcmin")]
    return None


def _empty_votable(message: str) -> bytes:
    votable = VOTableFile()
    resource = Resource()
    resource.infos.append(Info(name="QUERY_STATUS", value="ERROR", content=message))
    votable.resources.append(resource)
    buffer = io.BytesIO()
    votable.to_xml(buffer)
    return buffer.getvalue()


def answer(query: Mapping[str, str], tables: Mapping[str, Table]) -> bytes:
    """A VizieR-like VOTable answering a parsed query from ``tables`` (id -> table)."""
    source = query.get("-source", "")
    if source not in tables:
        return _empty_votable(f"unknown catalog {source!r}")
    table = tables[source]
    keep = np.ones(len(table), dtype=bool)
    if "-c" in query:
        ra_col, dec_col = position_columns(table)
        radius = parse_radius_deg(query)
        if radius is None:
            raise ValueError("a -c position without -c.rd/-c.rm/-c.rs/-c.r (boxes are not supported)")
        positions = SkyCoord(_as_float(table[ra_col]), _as_float(table[dec_col]), unit="deg")
        keep &= parse_center(query["-c"]).separation(positions).deg <= radius
    for key, expr in query.items():
        if not key.startswith("-") and key in table.colnames:
            keep &= constraint_mask(table[key], expr)
    wanted = [c for c in query.get("-out", "").split(",") if c in table.colnames] or table.colnames
    rows = table[keep][wanted]
    out_max = query.get("-out.max", str(DEFAULT_OUT_MAX))
    if out_max != "unlimited":
        rows = rows[: int(out_max)]
    votable = from_table(rows)
    resource = votable.resources[0]
    resource.name = source
    vo_table = resource.tables[0]
    vo_table.name = source
    vo_table.ID = source.replace("/", "_")
    buffer = io.BytesIO()
    votable.to_xml(buffer)
    return buffer.getvalue()


class FakeVizier:
    """A VizieR stand-in on 127.0.0.1 serving ``tables``.

    Parameters
    ----------
    tables : mapping
        VizieR table id (``I/355/gaiadr3``) -> astropy Table with VizieR's column names
        (and units); RA/Dec columns are found by name (:data:`RA_NAMES`, :data:`DEC_NAMES`).

    Attributes
    ----------
    url : str
        Base URL (``http://127.0.0.1:PORT``) once started: the value for ``POTPYRI_VIZIER_SERVER``.
    requests : list of dict
        Every parsed query script received, in order (also the failed ones).
    paths : list of str
        The request path of each of them.
    fail_status : int or None
        When set, every request is answered with this HTTP status and no VOTable.
    """

    def __init__(self, tables: Mapping[str, Table]) -> None:
        self.tables: dict[str, Table] = dict(tables)
        self.url = ""
        self.requests: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.fail_status: int | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def n_requests(self) -> int:
        """Number of HTTP requests received so far."""
        with self._lock:
            return len(self.requests)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, payload: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                query = parse_script(self.rfile.read(length).decode())
                with state._lock:
                    state.paths.append(self.path)
                    state.requests.append(query)
                if state.fail_status is not None:
                    self._reply(state.fail_status, b"internal error", "text/plain")
                    return
                if self.path.split("?", 1)[0] != ENDPOINT:
                    self._reply(404, b"not found", "text/plain")
                    return
                try:
                    payload = answer(query, state.tables)
                except Exception as exc:  # a query the stand-in cannot answer: say so
                    self._reply(400, f"{type(exc).__name__}: {exc}".encode(), "text/plain")
                    return
                self._reply(200, payload, "application/x-votable+xml")

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def start(self) -> Self:
        """Listen on a free port of 127.0.0.1 in a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-vizier", daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


__all__ = ["ENDPOINT", "SERVER_ENV", "FakeVizier", "answer", "constraint_mask", "parse_script", "position_columns"]
