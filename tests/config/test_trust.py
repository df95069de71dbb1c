"""Endpoints, secrets, files, executables and the promotion gate belong to the operator.

Run layers (dag_run.conf, the WebUI link config) that try to set them are rejected with the
layer and the key; operator layers (spec, environment) still may; secret env var names must
match the spec's pattern whichever layer set them.
"""

import json

import pytest
from click.testing import CliRunner

from tmpipe.cli import main
from tmpipe.config.resolver import resolve, resolve_shared
from tmpipe.errors import SpecError
from tmpipe.spec.loader import load_spec
from tmpipe.spec.trust import OPERATOR_ONLY, SECRET_ENV, marked_paths

SPEC = """\
schema_version: 1
dag:
  dag_id: demo
defaults:
  trademaster:
    epochs: 2
"""

# One value per operator-only key family, each valid for its schema.
OPERATOR_ONLY_SETTINGS = {
    "data.path": {"data": {"path": "/etc/passwd"}},
    "trademaster.upstream.python": {"trademaster": {"upstream": {"python": "/tmp/evil/python"}}},
    "trademaster.upstream.home": {"trademaster": {"upstream": {"home": "/tmp/evil"}}},
    "review.model_client.base_url": {"review": {"model_client": {"base_url": "http://127.0.0.1:9/v1"}}},
    "review.model_client.api_key_env": {"review": {"model_client": {"api_key_env": "TMPIPE_OTHER_SECRET"}}},
    "review.model_client.airflow_conn_id": {"review": {"model_client": {"airflow_conn_id": "aws_default"}}},
    "review.model_client.replay_file": {"review": {"model_client": {"replay_file": "/etc/hosts"}}},
    "review.model_client.prices": {"review": {"model_client": {"prices": {}}}},
    "review.budget.per_dag_run_usd": {"review": {"budget": {"per_dag_run_usd": 1000.0}}},
    "mlflow.tracking_uri": {"mlflow": {"tracking_uri": "http://127.0.0.1:9"}},
    "mlflow.promotion.alias": {"mlflow": {"promotion": {"alias": "prod"}}},
    "mlflow.promotion.max_drawdown": {"mlflow": {"promotion": {"max_drawdown": 1.0}}},
    "mlflow.promotion.require_beat_buy_and_hold": {"mlflow": {"promotion": {"require_beat_buy_and_hold": False}}},
    "webui.backend": {"webui": {"backend": "http"}},
    "webui.base_url": {"webui": {"base_url": "http://127.0.0.1:9"}},
    "webui.conn_id": {"webui": {"conn_id": "aws_default"}},
    "webui.token_env": {"webui": {"token_env": "TMPIPE_OTHER_SECRET"}},
}


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return load_spec(path)


def test_the_schemas_mark_exactly_the_operator_only_keys():
    marked = {".".join(path) for path in marked_paths(OPERATOR_ONLY)}
    assert marked == {
        "data.path", "trademaster.upstream", "mlflow.tracking_uri", "mlflow.promotion",
        "review.model_client.base_url", "review.model_client.api_key_env", "review.model_client.airflow_conn_id",
        "review.model_client.replay_file", "review.model_client.prices", "review.budget",
        "webui.backend", "webui.base_url", "webui.conn_id", "webui.token_env",
    }
    # Every *_env key names a secret: it is operator-only and checked against the pattern.
    secret_envs = {".".join(path) for path in marked_paths(SECRET_ENV)}
    assert secret_envs == {"review.model_client.api_key_env", "webui.token_env"}
    assert secret_envs <= marked


@pytest.mark.parametrize("key", sorted(OPERATOR_ONLY_SETTINGS))
def test_dag_run_conf_cannot_set_an_operator_only_key(spec, key):
    with pytest.raises(SpecError) as err:
        resolve(spec, "AAA", environ={}, conf_config=OPERATOR_ONLY_SETTINGS[key])
    assert str(err.value) == f"dag_run.conf.config:1:1: {key}: set only by the operator (spec or environment), not by the dag_run.conf"


@pytest.mark.parametrize("key", sorted(OPERATOR_ONLY_SETTINGS))
def test_link_config_cannot_set_an_operator_only_key(spec, key):
    with pytest.raises(SpecError) as err:
        resolve(spec, "AAA", environ={}, link_config=OPERATOR_ONLY_SETTINGS[key], link_source="webui link 7")
    assert str(err.value) == f"webui link 7:1:1: {key}: set only by the operator (spec or environment), not by the webui link config"


@pytest.mark.parametrize("key", sorted(OPERATOR_ONLY_SETTINGS))
def test_operator_layers_still_set_them(tmp_path, key):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC + "symbols:\n  AAA: " + json.dumps(OPERATOR_ONLY_SETTINGS[key]) + "\n")
    resolved = resolve(load_spec(path), "AAA", environ={})
    assert resolved.provenance[key].layer == "spec symbols"


def test_a_whole_operator_only_object_is_rejected_and_every_problem_is_listed(spec):
    conf = {"mlflow": {"promotion": {}}, "webui": {"base_url": "http://127.0.0.1:9"}, "trademaster": {"epoch": 3}}
    with pytest.raises(SpecError) as err:
        resolve(spec, "AAA", environ={}, conf_config=conf)
    assert str(err.value).splitlines() == [
        "dag_run.conf.config:1:1: trademaster.epoch: unknown key 'epoch' (did you mean 'epochs'?)",
        "dag_run.conf.config:1:1: mlflow.promotion: set only by the operator (spec or environment), not by the dag_run.conf",
        "dag_run.conf.config:1:1: webui.base_url: set only by the operator (spec or environment), not by the dag_run.conf",
    ]


def test_run_layers_keep_tuning_behaviour(spec):
    conf = {"trademaster": {"epochs": 4, "seed": 9}, "review": {"thresholds": {"min_sharpe": 0.5},
                                                                 "model_client": {"model": "m", "temperature": 0.3}}}
    link = {"data": {"lookback": 20}, "mlflow": {"experiment": "desk-b"}, "webui": {"timeout_seconds": 5}}
    resolved = resolve(spec, "AAA", environ={}, conf_config=conf, link_config=link)
    assert resolved.trademaster.epochs == 4
    assert resolved.provenance["review.thresholds.min_sharpe"].layer == "dag_run.conf"
    assert resolved.provenance["data.lookback"].layer == "webui link config"


def test_resolve_shared_does_not_let_a_run_redirect_the_webui(spec):
    with pytest.raises(SpecError, match=r"^dag_run.conf.config:1:1: webui.backend: set only by the operator"):
        resolve_shared(spec, environ={}, conf_config={"webui": {"backend": "http"}})
    shared = resolve_shared(spec, environ={"TMPIPE__WEBUI__BACKEND": "http", "TMPIPE__WEBUI__BASE_URL": "http://127.0.0.1:9"})
    assert (shared.webui.backend, shared.webui.base_url) == ("http", "http://127.0.0.1:9")


# --- secret environment variable names -------------------------------------------------

def _spec_with(tmp_path, text: str):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC + text)
    return load_spec(path)


def test_secret_env_names_outside_the_default_pattern_are_rejected_from_the_spec(tmp_path):
    with pytest.raises(SpecError) as err:
        _spec_with(tmp_path, "  review:\n    model_client:\n      api_key_env: AWS_SECRET_ACCESS_KEY\n")
    assert str(err.value) == (
        f"{tmp_path / 'spec.yaml'}:9:20: defaults.review.model_client.api_key_env: 'AWS_SECRET_ACCESS_KEY' does not match "
        "security.secret_env_pattern '^(OPENAI|TMPIPE)_[A-Z0-9_]*$'")


def test_secret_env_names_from_the_environment_are_checked_too(spec):
    environ = {"TMPIPE__WEBUI__TOKEN_ENV": "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"}
    expected = ("env:TMPIPE__WEBUI__TOKEN_ENV:1:1: webui.token_env: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN' does not match "
                "security.secret_env_pattern '^(OPENAI|TMPIPE)_[A-Z0-9_]*$' (set by environment)")
    with pytest.raises(SpecError) as err:
        resolve(spec, "AAA", environ=environ)
    assert str(err.value) == expected
    with pytest.raises(SpecError) as err:
        resolve_shared(spec, environ=environ)
    assert str(err.value) == expected


def test_the_spec_declares_its_own_pattern(tmp_path):
    spec = _spec_with(tmp_path, "  review:\n    model_client:\n      api_key_env: AZURE_OPENAI_KEY\n"
                                "security:\n  secret_env_pattern: '^(AZURE|TMPIPE)_[A-Z_]*$'\n")
    assert resolve(spec, "AAA", environ={}).review.model_client.api_key_env == "AZURE_OPENAI_KEY"
    # The pattern applies to the schema default as well: OPENAI_API_KEY no longer qualifies.
    spec = _spec_with(tmp_path, "security:\n  secret_env_pattern: '^(AZURE|TMPIPE)_[A-Z_]*$'\n")
    with pytest.raises(SpecError, match=r"schemas/sections/review.schema.json:1:1: review.model_client.api_key_env: "
                                        r"'OPENAI_API_KEY' does not match .*\(set by schema defaults\)"):
        resolve(spec, "AAA", environ={})


def test_validate_reports_secret_env_names_and_bad_patterns_with_positions(tmp_path):
    bad_name = tmp_path / "bad_name.yaml"
    bad_name.write_text(SPEC + "symbols:\n  AAA:\n    webui:\n      token_env: HOME\n")
    bad_pattern = tmp_path / "bad_pattern.yaml"
    bad_pattern.write_text(SPEC + "security:\n  secret_env_pattern: '^(OPENAI'\n")
    result = CliRunner().invoke(main, ["validate", str(bad_name), str(bad_pattern)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == (f"{bad_name}:10:18: symbols.AAA.webui.token_env: 'HOME' does not match "
                        "security.secret_env_pattern '^(OPENAI|TMPIPE)_[A-Z0-9_]*$'")
    assert lines[1].startswith(f"{bad_pattern}:8:23: security.secret_env_pattern: '^(OPENAI' is not a 'regex'")


# --- CLI surfaces -----------------------------------------------------------------------

def test_explain_rejects_run_layers_and_marks_operator_only_keys(spec):
    rejected = CliRunner().invoke(main, ["explain", "--symbol", "AAA", "--spec", spec.path,
                                         "--link-config", '{"webui": {"token_env": "TMPIPE_X"}}'])
    assert rejected.exit_code == 1
    assert rejected.stderr.strip() == ("--link-config:1:1: webui.token_env: set only by the operator (spec or environment), "
                                       "not by the webui link config")
    shown = CliRunner().invoke(main, ["explain", "--symbol", "AAA", "--spec", spec.path, "--json"])
    rows = {row["key"]: row for row in json.loads(shown.stdout)["provenance"]}
    assert rows["webui.base_url"]["operator_only"] is True and rows["mlflow.promotion.alias"]["operator_only"] is True
    assert rows["trademaster.epochs"]["operator_only"] is False


def test_webui_add_symbol_refuses_an_operator_only_link_config(tmpipe_home):
    result = CliRunner().invoke(main, ["webui", "add-symbol", "AAA", "--config", '{"mlflow": {"tracking_uri": "http://127.0.0.1:9"}}'])
    assert result.exit_code == 1
    assert result.stderr.strip() == ("--config:1:1: mlflow.tracking_uri: set only by the operator (spec or environment), "
                                     "not by the webui link config")
    assert CliRunner().invoke(main, ["webui", "list"]).stdout.strip() == ""


def test_explain_masks_credentials_inside_urls(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC + "  mlflow:\n    tracking_uri: 'https://ci:p@ss-w0rd-77@mlflow.internal'\n")
    for extra in ([], ["--json"]):
        result = CliRunner().invoke(main, ["explain", "--symbol", "AAA", "--spec", str(path), *extra])
        assert result.exit_code == 0, result.output
        assert "https://ci:***@mlflow.internal" in result.stdout and "ss-w0rd-77" not in result.stdout
