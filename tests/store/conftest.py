"""Fixtures: a real WebUI server on 127.0.0.1 and a fault-injecting proxy in front of it."""

import pytest

from ..servers import ForwardingProxy, webui_app_server


@pytest.fixture
def webui_server(tmp_path):
    """The `tmpipe webui serve` app on a fresh database, served over HTTP in a thread of this process
    (test_server_security.py also starts the command itself, in its own process)."""
    with webui_app_server(tmp_path / "webui.db") as url:
        yield url


@pytest.fixture
def fault_proxy(webui_server):
    with ForwardingProxy(webui_server) as proxy:
        yield proxy
