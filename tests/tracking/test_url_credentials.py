"""Credentials inside URLs never reach MLflow params, the config artifact or retry warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tmpipe.errors import TrackingError
from tmpipe.tracking import client_for, get_or_create_run, log_config, run_url
from tmpipe.tracking.retry import call_with_retry

from .conftest import make_context

RESOLVED = {
    "mlflow": {"tracking_uri": "https://ci:p@ss-w0rd-77@mlflow.internal:5000", "experiment": "x"},
    "webui": {"base_url": "https://ghp_tokenvalue1234@webui.internal"},
    "review": {"model_client": {"base_url": "http://desk:llm-pass-991@127.0.0.1:9/v1"}},
}
SECRETS = ("p@ss-w0rd-77", "ss-w0rd-77", "ghp_tokenvalue1234", "llm-pass-991")


def test_params_and_config_artifact_mask_url_credentials(tracking_uri, tmp_path):
    run = get_or_create_run(make_context(tracking_uri))
    log_config(run.run_id, RESOLVED, {}, tracking_uri=tracking_uri)
    client = client_for(tracking_uri)
    params = client.get_run(run.run_id).data.params
    assert params["mlflow.tracking_uri"] == "https://ci:***@mlflow.internal:5000"
    assert params["webui.base_url"] == "https://***@webui.internal"
    assert params["review.model_client.base_url"] == "http://desk:***@127.0.0.1:9/v1"
    artifact = Path(client.download_artifacts(run.run_id, "config/resolved_config.yaml", str(tmp_path))).read_text()
    assert not [secret for secret in SECRETS if secret in repr(params) or secret in artifact]


def test_run_links_and_tracking_errors_mask_url_credentials(caplog):
    assert run_url("https://ci:p@ss-w0rd-77@mlflow.internal", "1", "r") == "https://mlflow.internal/#/experiments/1/runs/r"

    def refuse():
        raise ConnectionError("API request to https://ci:p@ss-w0rd-77@mlflow.internal/api failed: connection refused")

    with pytest.raises(TrackingError) as err:
        call_with_retry("connect", refuse)
    assert "https://ci:***@mlflow.internal/api" in str(err.value)
    assert not [secret for secret in SECRETS if secret in str(err.value) or secret in caplog.text]
    assert "retrying" in caplog.text  # the warnings were logged, masked
