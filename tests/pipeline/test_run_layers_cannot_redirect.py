"""A run cannot send the worker's secrets to an endpoint of its choosing.

A capture server on 127.0.0.1 stands in for an attacker's endpoint: dag_run.conf or a WebUI
link config point the review's model client or the WebUI client at it and name another
environment variable of the worker as the secret. The stage fails while resolving its
config, naming the layer and key, and the capture server receives nothing. The same server
configured by the operator (environment layer) does receive the call: it is not the server
that is refused but who named it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tmpipe.config.resolver import resolve
from tmpipe.errors import SpecError, SymbolSelectionError
from tmpipe.pipeline import stages
from tmpipe.pipeline.context import RunContext
from tmpipe.review import build_evidence, review_signal

WORKER_SECRET = "worker-secret-4c1d9e77"
DAG_ID = "trademaster_autogen_pipeline_workflow"
REFUSED = "set only by the operator (spec or environment)"


class CaptureServer:
    """Records method, path and Authorization of every request; answers an empty JSON list."""

    def __init__(self):
        self.requests: list[dict] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                capture.requests.append({"method": self.command, "path": self.path,
                                         "authorization": self.headers.get("Authorization")})
                payload = b"[]"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = _record

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CaptureServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def capture():
    with CaptureServer() as server:
        yield server


@pytest.fixture
def run_context(tmp_path, tmpipe_home, monkeypatch):
    monkeypatch.setenv("TMPIPE_WORKER_SECRET", WORKER_SECRET)
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"schema_version: 1\ndag:\n  dag_id: {DAG_ID}\n")

    def make(conf: dict) -> RunContext:
        return RunContext(dag_id=DAG_ID, dag_run_id="manual__2024-06-03T00:00:00+00:00", logical_date=None,
                          conf=conf, spec_path=str(spec))
    return make


def test_dag_run_conf_cannot_point_the_webui_client_at_another_server(capture, run_context):
    conf = {"config": {"webui": {"backend": "http", "base_url": capture.url, "token_env": "TMPIPE_WORKER_SECRET"}}}
    with pytest.raises(SpecError) as err:
        stages.resolve_symbols(run_context(conf))
    assert str(err.value).splitlines() == [
        f"dag_run.conf.config:1:1: webui.{key}: {REFUSED}, not by the dag_run.conf" for key in ("backend", "base_url", "token_env")]
    assert capture.requests == []


def test_the_operator_may_point_the_webui_client_there(capture, run_context, monkeypatch):
    monkeypatch.setenv("TMPIPE__WEBUI__BACKEND", "http")
    monkeypatch.setenv("TMPIPE__WEBUI__BASE_URL", capture.url)
    monkeypatch.setenv("TMPIPE__WEBUI__TOKEN_ENV", "TMPIPE_WORKER_SECRET")
    with pytest.raises(SymbolSelectionError, match="no symbols to run"):  # the capture server lists none
        stages.resolve_symbols(run_context({}))
    assert capture.requests == [{"method": "GET", "path": "/api/workflow-symbols/?enabled_only=true",
                                 "authorization": f"Bearer {WORKER_SECRET}"}]


@pytest.mark.parametrize("layer", ["conf", "link"])
def test_a_run_layer_cannot_point_persist_at_another_server(capture, run_context, layer):
    webui = {"webui": {"backend": "http", "base_url": capture.url, "token_env": "TMPIPE_WORKER_SECRET"}}
    conf = {"config": webui} if layer == "conf" else {}
    link = {"link_id": 3, "config": webui if layer == "link" else {}, "notes": None}
    with pytest.raises(SpecError, match=r"webui.base_url: set only by the operator"):
        stages.persist(run_context(conf), "AAA", link)
    assert capture.requests == []


@pytest.mark.parametrize("layer", ["conf", "link"])
def test_a_run_layer_cannot_send_the_review_to_another_endpoint(capture, run_context, layer, engine_and_inference):
    """What stages.review does: resolve the symbol's config, then review with its review section."""
    review = {"review": {"model_client": {"provider": "openai", "base_url": capture.url + "/v1",
                                          "api_key_env": "TMPIPE_WORKER_SECRET"}}}
    ctx = run_context({"config": review} if layer == "conf" else {})
    with pytest.raises(SpecError) as err:
        config = resolve(ctx.spec, "AAA", conf_config=ctx.conf.get("config"),
                         link_config=review if layer == "link" else None, link_source="webui link 3")
        review_signal(build_evidence(*engine_and_inference, symbol="AAA", lineage={}), config.review, symbol="AAA")
    source, name = ("dag_run.conf.config", "dag_run.conf") if layer == "conf" else ("webui link 3", "webui link config")
    assert str(err.value).splitlines() == [
        f"{source}:1:1: review.model_client.{key}: {REFUSED}, not by the {name}" for key in ("api_key_env", "base_url")]
    assert capture.requests == []
    assert WORKER_SECRET not in json.dumps(capture.requests)


@pytest.fixture
def engine_and_inference(tmp_path):
    """A minimal contract-shaped engine result and inference (the review's inputs)."""
    curve = tmp_path / "equity_curve.csv"
    curve.write_text("date,close,position,equity,buy_and_hold\n"
                     + "".join(f"2024-05-{d:02d},{100 + d},1,{1 + d / 100},{1 + d / 120}\n" for d in range(1, 29)))
    metrics = {"total_return": 0.1, "annual_return": 0.2, "annual_volatility": 0.2, "sharpe": 1.0, "sortino": 1.2,
               "max_drawdown": 0.1, "calmar": 1.0, "win_rate": 0.5, "turnover": 1.0, "bars": 28, "bars_per_year": 252}
    engine = {"schema_version": 1, "kind": "train_backtest", "backend": "builtin", "symbol": "AAA", "agent": "deepscalper",
              "epochs": [], "chosen_epoch": 0, "chosen_reason": "best validation sharpe",
              "metrics": {"valid": metrics, "test": metrics, "buy_and_hold": metrics}, "excess_return": 0.0,
              "equity_curve_path": str(curve), "model_dir": str(tmp_path), "config": {},
              "last_action": {"action": "long", "target_position": 1.0, "date": "2024-05-28"},
              "data_fingerprint": {"sha256": "ab" * 32, "first_timestamp": "2024-05-01", "last_timestamp": "2024-05-28",
                                   "rows": 28},
              "splits": {}, "wall_time_seconds": 1.0, "seed": 1, "torch_threads": 1}
    inference = {"schema_version": 1, "kind": "inference", "backend": "builtin", "symbol": "AAA", "as_of": "2024-05-28",
                 "action": "long", "target_position": 1.0, "q_values": {"short": 0.0, "flat": 0.1, "long": 0.6},
                 "probabilities": {"short": 0.2, "flat": 0.2, "long": 0.6}, "reference_price": 128.0,
                 "window": {"first_timestamp": "2024-05-01", "last_timestamp": "2024-05-28", "bars": 28},
                 "market": {"last_close": 128.0, "return_1d": 0.01, "return_20d": 0.05,
                            "realised_volatility_20d": 0.2, "trend_slope_20d": 0.001},
                 "model_dir": str(tmp_path)}
    return engine, inference


def test_tmpipe_run_refuses_a_redirecting_conf_before_any_work(capture, tmp_path, tmpipe_home):
    from click.testing import CliRunner

    from tmpipe.cli import main

    conf = {"config": {"mlflow": {"tracking_uri": capture.url}}}
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"schema_version: 1\ndag:\n  dag_id: {DAG_ID}\n")
    result = CliRunner().invoke(main, ["run", "--spec", str(spec), "--conf", json.dumps(conf)])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"dag_run.conf.config:1:1: mlflow.tracking_uri: {REFUSED}, not by the dag_run.conf"
    assert not tmpipe_home.exists() and capture.requests == []
