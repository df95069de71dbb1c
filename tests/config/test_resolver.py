"""Six layers, each winning where it should; limits name the layer; provenance per key."""

import json

import pytest
from click.testing import CliRunner

from tmpipe.cli import main
from tmpipe.config.resolver import resolve
from tmpipe.errors import ConfigBoundsError, SpecError, SymbolError
from tmpipe.spec.loader import load_spec

SPEC = """\
schema_version: 1
dag:
  dag_id: demo
limits:
  max_epochs: 40
defaults:
  trademaster:
    epochs: 2
    seed: 2
    hidden_size: 32
    learning_rate: 0.002
    batch_size: 16
symbols:
  AAA:
    trademaster:
      seed: 4
      hidden_size: 48
      learning_rate: 0.004
"""


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return load_spec(path)


def layered(spec, **kwargs):
    return resolve(
        spec,
        "AAA",
        environ={"TMPIPE__TRADEMASTER__SEED": "3", "TMPIPE__TRADEMASTER__BATCH_SIZE": "24", "TMPIPE__TRADEMASTER__HIDDEN_SIZE": "40"},
        conf_config={"trademaster": {"hidden_size": 56, "learning_rate": 0.005}},
        link_config={"trademaster": {"learning_rate": 0.006}},
        link_source="webui link 7",
        **kwargs,
    )


def test_each_layer_wins_where_it_should(spec):
    resolved = layered(spec)
    tm = resolved.values["trademaster"]
    origin = {key: resolved.provenance[f"trademaster.{key}"] for key in ("gamma", "epochs", "batch_size", "seed", "hidden_size", "learning_rate")}
    # 1 schema default, 2 spec defaults, 3 environment, 4 spec symbols, 5 dag_run.conf, 6 link config
    assert (tm["gamma"], origin["gamma"].layer) == (0.99, "schema defaults")
    assert origin["gamma"].source == "schemas/sections/trademaster.schema.json"
    assert (tm["epochs"], origin["epochs"].layer) == (2, "spec defaults")
    assert origin["epochs"].source.endswith("spec.yaml:8")
    assert (tm["batch_size"], origin["batch_size"].layer) == (24, "environment")
    assert origin["batch_size"].source == "env:TMPIPE__TRADEMASTER__BATCH_SIZE"
    assert (tm["seed"], origin["seed"].layer) == (4, "spec symbols")
    assert origin["seed"].source.endswith("spec.yaml:16")
    assert (tm["hidden_size"], origin["hidden_size"].layer) == (56, "dag_run.conf")
    assert (tm["learning_rate"], origin["learning_rate"].layer) == (0.006, "webui link config")
    assert origin["learning_rate"].source == "webui link 7"


def test_every_resolved_leaf_has_provenance(spec):
    resolved = layered(spec)

    def leaves(values, prefix=""):
        for key, value in values.items():
            if isinstance(value, dict) and value:
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    assert set(leaves(resolved.values)) == set(resolved.provenance)


@pytest.mark.parametrize(
    "kwargs, layer",
    [
        ({"environ": {"TMPIPE__TRADEMASTER__EPOCHS": "41"}}, "environment (env:TMPIPE__TRADEMASTER__EPOCHS)"),
        ({"environ": {}, "conf_config": {"trademaster": {"epochs": 99}}}, "dag_run.conf (dag_run.conf.config)"),
        ({"environ": {}, "link_config": {"trademaster": {"epochs": 50}}, "link_source": "webui link 3"}, "webui link config (webui link 3)"),
    ],
)
def test_out_of_bounds_value_names_its_layer(spec, kwargs, layer):
    with pytest.raises(ConfigBoundsError) as err:
        resolve(spec, "AAA", **kwargs)
    assert err.value.key == "trademaster.epochs"
    assert str(err.value).endswith(f"exceeds limits.max_epochs=40; set by {layer}")


def test_each_layer_is_validated_before_merging(spec):
    with pytest.raises(SpecError, match=r"env:TMPIPE__TRADEMASTER__EPOCH:1:1: trademaster.epoch: unknown key 'epoch' \(did you mean 'epochs'\?\)"):
        resolve(spec, "AAA", environ={"TMPIPE__TRADEMASTER__EPOCH": "3"})
    with pytest.raises(SpecError, match=r"webui link 9:1:1: trademaster.epochs: 'x' is not of type 'integer'"):
        resolve(spec, "AAA", environ={}, link_config={"trademaster": {"epochs": "x"}}, link_source="webui link 9")


def test_symbol_is_validated_before_use(spec):
    with pytest.raises(SymbolError):
        resolve(spec, "../../etc", environ={})


def test_explain_prints_layers_as_json(spec, tmp_path):
    result = CliRunner().invoke(
        main,
        ["explain", "--symbol", "AAA", "--spec", spec.path, "--json", "--conf", '{"config": {"data": {"lookback": 12}}}', "--link-config", '{"review": {"horizon": "1d"}}'],
        env={"TMPIPE__DATA__VALID_RATIO": "0.2"},
    )
    assert result.exit_code == 0, result.output
    rows = {row["key"]: row for row in json.loads(result.stdout)["provenance"]}
    assert rows["data.lookback"]["layer"] == "dag_run.conf" and rows["data.lookback"]["value"] == 12
    assert rows["review.horizon"]["layer"] == "webui link config" and rows["review.horizon"]["source"] == "--link-config"
    assert rows["data.valid_ratio"]["layer"] == "environment" and rows["data.valid_ratio"]["value"] == 0.2
    assert rows["trademaster.seed"]["layer"] == "spec symbols"


def test_explain_out_of_bounds_fails_naming_layer(spec):
    result = CliRunner().invoke(main, ["explain", "--symbol", "AAA", "--spec", spec.path, "--conf", '{"config": {"trademaster": {"epochs": 400}}}'])
    assert result.exit_code == 1
    assert "set by dag_run.conf" in result.stderr
