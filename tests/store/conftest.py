"""Fixtures: a real `tmpipe webui serve` process and a fault-injecting proxy in front of it."""

import pytest

from ..servers import ForwardingProxy, webui_server as serve_webui


@pytest.fixture
def webui_server(tmp_path):
    """`tmpipe webui serve` for real, in its own process, stopped by PID."""
    with serve_webui(tmp_path / "webui.db") as url:
        yield url


@pytest.fixture
def fault_proxy(webui_server):
    with ForwardingProxy(webui_server) as proxy:
        yield proxy
