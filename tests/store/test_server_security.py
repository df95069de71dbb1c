"""`tmpipe webui serve` exposed on a network: token auth, body limits, validated writes; all against the real server."""

import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from click.testing import CliRunner

from tmpipe.cli import main
from tmpipe.errors import StoreError
from tmpipe.store.http import HttpArtifactStore
from tmpipe.store.models import ArtifactCreate

from ..servers import WEBUI_TOKEN, webui_server as serve_webui
from .documents import DAG, signal_content, trace_content

DOCUMENTED = json.loads(Path("docs/webui-openapi.json").read_text())


def client(url, token=WEBUI_TOKEN):
    return HttpArtifactStore(url, token=token, retries=0)


def artifact(artifact_type="signal", content=None, symbol="AAA"):
    content = content if content is not None else (signal_content(symbol) if artifact_type == "signal" else trace_content(symbol))
    return ArtifactCreate(dag_id=DAG, dag_run_id="manual__1", symbol=symbol, artifact_type=artifact_type, content=content)


def documented_operations():
    """Every (method, path) of the API contract, path parameters filled in."""
    for path, operations in DOCUMENTED["paths"].items():
        for method in operations:
            yield method.upper(), path.replace("{artifact_id}", "1").replace("{symbol}", "AAA").replace("{dag_id}", DAG)


def raw_exchange(url: str, head: str, parts: list[bytes]) -> bytes:
    """Send a request by hand (so the body can be cut short), then read what the server answers."""
    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=15) as sock:
        sock.sendall(head.encode() + b"\r\n")
        for part in parts:
            sock.sendall(part)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_every_route_but_health_and_the_contract_needs_the_token(webui_server):
    operations = list(documented_operations())
    assert len(operations) >= 12
    assert {("PATCH", f"/api/workflow-symbols/AAA/links/{DAG}/"), ("DELETE", "/api/workflow-symbols/AAA/")} <= set(operations)
    for method, path in operations:
        anonymous = httpx.request(method, webui_server + path, json={})
        wrong = httpx.request(method, webui_server + path, json={}, headers={"Authorization": "Bearer not-the-token"})
        if path in ("/api/health", "/openapi.json"):
            assert anonymous.status_code == 200, path
            continue
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.json() == {"detail": "missing bearer token"}
        assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert httpx.get(webui_server + "/openapi.json").json() == DOCUMENTED


def test_the_contract_documents_the_bearer_scheme_and_the_refusals():
    assert DOCUMENTED["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in DOCUMENTED["paths"].items():
        for operation in operations.values():
            if path == "/api/health":
                assert "security" not in operation
            else:
                assert operation["security"] == [{"HTTPBearer": []}], path
                assert {"401", "413"} <= set(operation["responses"]), path
    assert "422" in DOCUMENTED["paths"]["/api/artifacts/"]["post"]["responses"]
    assert "/api/artifacts/{artifact_id}/revisions/" in DOCUMENTED["paths"]


def test_an_anonymous_write_cannot_replace_a_signal(webui_server):
    saved = client(webui_server).save_artifact(artifact())
    with pytest.raises(StoreError) as err:
        client(webui_server, token=None).save_artifact(artifact(content=signal_content(rationale="replaced")))
    assert err.value.status == 401 and "missing bearer token" in str(err.value)
    with pytest.raises(StoreError):
        client(webui_server, token="guess-" + WEBUI_TOKEN).set_lineage(saved.id, "other", "9")
    assert client(webui_server).get_artifact(saved.id) == saved


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda store: store.save_artifact(artifact(content={"action": "BUY"})), "content: 'confidence' is a required key"),
        (lambda store: store.save_artifact(artifact(content=signal_content(confidence=1.5))), "content.confidence: 1.5 is greater than the maximum of 1"),
        (lambda store: store.save_artifact(artifact(content=signal_content(actoin="BUY"))), "content.actoin: unknown key 'actoin' (did you mean 'action'?)"),
        (lambda store: store.save_artifact(artifact(content=signal_content("BBB"))), "content.symbol: 'BBB' is not the artifact's symbol 'AAA'"),
        (lambda store: store.save_artifact(artifact("llm", content={**trace_content(), "chain": {}})), "content.chain: 'head' is a required key"),
        (lambda store: store.save_artifact(artifact("llm", content=signal_content())), "invalid llm artifact"),
        (lambda store: store.save_artifact(artifact().model_copy(update={"artifact_type": "bogus"})), "body.artifact_type: Input should be 'signal', 'llm' or 'signal_score'"),
        (lambda store: store.add_link("AAA", DAG, config={"trademaster": {"epochs": "lots"}}), "config.trademaster.epochs: 'lots' is not of type 'integer'"),
        (lambda store: store.add_link("AAA", DAG, config={"trademaster": {"epoch": 2}}), "config.trademaster.epoch: unknown key 'epoch' (did you mean 'epochs'?)"),
        (
            lambda store: store.add_link("AAA", DAG, config={"review": {"model_client": {"base_url": "http://127.0.0.1:9/v1"}}}),
            "config.review.model_client.base_url: set only by the operator (spec or environment), not by the webui link config",
        ),
    ],
)
def test_invalid_content_is_refused_naming_the_field(webui_server, write, message):
    store = client(webui_server)
    store.add_symbol("AAA")
    with pytest.raises(StoreError) as err:
        write(store)
    assert err.value.status == 422 and not err.value.retryable
    assert message in str(err.value)
    assert store.list_artifacts() == [] and store.list_workflow_symbols()[0].links == []


def test_a_body_over_the_default_limit_is_refused_before_it_is_sent(webui_server):
    """60 MB announced, none of it sent: the server answers 413 without waiting for the body.
    (Bytes sent that the server never reads make its close a reset, which can reach the client
    before the answer does.)"""
    head = (f"POST /api/artifacts/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WEBUI_TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {60 * 1024 * 1024}\r\n")
    answer = raw_exchange(webui_server, head, [])
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"request body larger than 10485760 bytes" in answer


def test_a_streamed_body_is_cut_at_the_configured_limit(tmp_path):
    """No Content-Length (chunked): the server counts what arrives and stops at --max-body-mb."""
    limit = 1024 * 1024
    with serve_webui(tmp_path / "webui.db", "--max-body-mb", "1") as url:
        head = f"POST /api/artifacts/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WEBUI_TOKEN}\r\nTransfer-Encoding: chunked\r\n"
        chunk = b" " * (64 * 1024)
        # Exactly the limit, then one byte more, and no last chunk: the body never ends. (Bytes
        # sent past the point of refusal stay unread, and a socket closed with unread bytes
        # resets the connection, so the test sends none.)
        parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (limit // len(chunk)) + [b"1\r\n \r\n"]
        answer = raw_exchange(url, head, parts)
        assert answer.startswith(b"HTTP/1.1 413 ") and b"larger than 1048576 bytes" in answer
        assert client(url).save_artifact(artifact()).id == 1  # a body within the limit still goes through


def test_the_server_refuses_to_start_without_a_token(tmp_path, monkeypatch):
    monkeypatch.delenv("TMPIPE_WEBUI_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["webui", "serve", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 1
    assert result.stderr == "no API token: set TMPIPE_WEBUI_TOKEN or --token-file, or pass --insecure to accept anonymous requests\n"
    monkeypatch.setenv("TMPIPE_WEBUI_TOKEN", "short")
    result = CliRunner().invoke(main, ["webui", "serve", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 1 and result.stderr == "TMPIPE_WEBUI_TOKEN: the API token must be at least 16 characters\n"
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    result = CliRunner().invoke(main, ["webui", "serve", "--token-file", str(empty), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 1 and result.stderr == f"{empty}: the token file is empty\n"


def test_a_token_file_sets_the_token(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file-0123456789\n")
    with serve_webui(tmp_path / "webui.db", "--token-file", str(token_file), token=None) as url:
        assert client(url, token="from-a-file-0123456789").list_workflow_symbols() == []
        with pytest.raises(StoreError) as err:
            client(url).list_workflow_symbols()
        assert err.value.status == 401


def test_insecure_accepts_anonymous_requests_and_says_so(tmp_path):
    with serve_webui(tmp_path / "webui.db", "--insecure", token=None) as url:
        assert client(url, token=None).add_symbol("AAA").symbol == "AAA"
    log = (tmp_path / "webui-server.log").read_text()
    assert "WARNING: --insecure: anyone who can reach 127.0.0.1:" in log
