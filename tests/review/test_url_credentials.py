"""A password inside the operator's base_url reaches neither trace.json nor stdout."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tmpipe.cli import main

PASSWORD = "p@ss-w0rd-51c7"
KEY = "sk-tmpipe-FAKE-url-credentials"
SIGNAL = {"action": "BUY", "confidence": 0.6, "target_position": 0.8, "stop_loss": 200.5, "take_profit": 226.0,
          "rationale": "Sharpe 1.25 with drawdown 18% supports a long.", "risks": ["volatility"],
          "evidence": {"test_sharpe": 1.25}}
TALK = {"analyst": "Inference long, Sharpe 1.25.", "risk_manager": "All checks PASS.",
        "signal_writer": "```json\n" + json.dumps(SIGNAL) + "\n```"}


def test_review_run_masks_the_base_url_password(endpoint_kit, evidence, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPIPE_TEST_LLM_KEY", KEY)
    evidence_file = tmp_path / "evidence.json"
    evidence_file.write_text(json.dumps(evidence))
    with endpoint_kit.FakeEndpoint(lambda role, request: endpoint_kit.Reply(content=TALK[role])) as endpoint:
        base_url = endpoint.base_url.replace("http://", f"http://desk:{PASSWORD}@")
        spec = tmp_path / "spec.yaml"
        spec.write_text("schema_version: 1\ndag: {dag_id: demo}\ndefaults:\n  review:\n    model_client:\n"
                        f"      provider: openai\n      base_url: '{base_url}'\n      model: local-test-model\n"
                        "      api_key_env: TMPIPE_TEST_LLM_KEY\n")
        result = CliRunner().invoke(main, ["review", "run", "--evidence", str(evidence_file), "--spec", str(spec),
                                           "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert len(endpoint.requests) == 3  # the operator's endpoint was used
    trace_text = (tmp_path / "out" / "trace.json").read_text()
    for shown in (trace_text, (tmp_path / "out" / "signal.json").read_text(), result.output):
        assert PASSWORD not in shown and "ss-w0rd" not in shown and KEY not in shown
    trace = json.loads(trace_text)
    masked = endpoint.base_url.replace("http://", "http://desk:***@")
    assert trace["model_client"]["base_url"] == masked
    assert f"at {masked}" in result.output
    assert CliRunner().invoke(main, ["review", "verify", str(tmp_path / "out" / "trace.json")]).exit_code == 0
