"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import pytest
from astropy.table import Table

from tests.support.fake_vizier import SERVER_ENV, FakeVizier


@pytest.fixture
def fake_vizier_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Mapping[str, Table]], FakeVizier]]:
    """Start a :class:`~tests.support.fake_vizier.FakeVizier` serving the tables given.

    ``fake_vizier_server({"II/349/ps1": table, ...})`` starts one on 127.0.0.1, points the
    catalog sources at it (``POTPYRI_VIZIER_SERVER``; proxies bypassed for 127.0.0.1) and
    returns it; every server started is stopped at teardown.
    """
    servers: list[FakeVizier] = []

    def start(tables: Mapping[str, Table]) -> FakeVizier:
        server = FakeVizier(tables).start()
        servers.append(server)
        monkeypatch.setenv(SERVER_ENV, server.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
