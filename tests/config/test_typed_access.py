"""The code reads config sections as typed attributes, so mypy finds a misspelt key before a run does."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Kept between runs, beside `make lint`'s cache (.mypy_cache, ignored by git) but apart from it as
# the options differ: warm, mypy rechecks only what changed instead of every dependency. The probes
# keep their paths too, as mypy reports a probe it finds unchanged by the path it had when checked.
PROBES = Path(".mypy_cache", "typed-access-probes")  # relative to ROOT, as mypy names them

# (module, a config key it reads, the section model that holds the key)
READS = [
    ("tmpipe/engine/trainer.py", "early_stopping_patience", "TrademasterConfig"),
    ("tmpipe/engine/data.py", "valid_ratio", "DataConfig"),
    ("tmpipe/engine/walkforward.py", "max_selection_epsilon", "EvaluationConfig"),
    ("tmpipe/engine/upstream_config.py", "hindsight_weight", "TrademasterConfig"),
    ("tmpipe/tracking/registry.py", "skill_level", "PromotionConfig"),
    ("tmpipe/review/policy.py", "min_sharpe", "ThresholdsConfig"),
    ("tmpipe/review/team.py", "max_messages", "ReviewConfig"),
    ("tmpipe/review/clients.py", "rate_limit_retries", "ModelClientConfig"),
]


def test_a_misspelt_key_in_the_code_that_reads_a_section_is_a_type_check_error():
    """Each module, copied with one key misspelt, fails mypy at every line that reads the key as an attribute."""
    pytest.importorskip("mypy")
    probes = {}
    (ROOT / PROBES).mkdir(parents=True, exist_ok=True)
    for module, key, model in READS:
        source = (ROOT / module).read_text()
        misspelt = key[:-1]  # "epochs" -> "epoch"
        assert re.search(rf"\b{key}\b", source), f"{module} no longer reads {key}"
        probe = PROBES / f"probe_{Path(module).stem}.py"
        (ROOT / probe).write_text(re.sub(rf"\b{key}\b", misspelt, source))
        lines = sorted({node.lineno for node in ast.walk(ast.parse(source))
                        if isinstance(node, ast.Attribute) and node.attr == key})
        probes[probe] = (model, misspelt, lines)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--check-untyped-defs", "--no-error-summary",
         f"--config-file={ROOT / 'pyproject.toml'}", f"--cache-dir={PROBES / 'cache'}", *map(str, probes)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    for probe, (model, misspelt, lines) in probes.items():
        found = [int(m.group(1)) for m in re.finditer(
            rf"^{re.escape(str(probe))}:(\d+): error: \"{model}\" has no attribute \"{misspelt}\"", checked.stdout, re.M)]
        assert lines and sorted(set(found)) == lines, f"{probe.name}: expected errors on lines {lines}, mypy said:\n{checked.stdout}"


def test_the_engine_takes_a_typed_config_not_a_dict(tmp_path):
    from tmpipe.config.sections import EngineConfig
    from tmpipe.engine import infer, train_backtest

    config = EngineConfig.from_values({"data": {"source": "demo", "demo_series": "synthetic"}})
    with pytest.raises(TypeError, match="EngineConfig"):
        train_backtest(config.model_dump(), symbol="SYN", out_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="EngineConfig"):
        infer(tmp_path, config.model_dump(), symbol="SYN")  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())  # refused before any work


def test_every_section_model_names_its_node_in_the_schemas_and_builds_from_a_partial_dict():
    """Nested models (``PromotionConfig``, ``ThresholdsConfig`` ...) are built on their own, defaults filled."""
    from tmpipe.config import sections
    from tmpipe.spec import schemas

    models = [m for m in vars(sections).values()
              if isinstance(m, type) and issubclass(m, sections._Section) and m is not sections._Section]
    assert len(models) == 16
    for model in models:
        found = schemas.registry().resolver(base_uri=model.schema_id).lookup(model.schema_id)
        _, node = schemas._target(found.resolver, found.contents)
        assert set(node["properties"]) == set(model.model_fields), model.__name__
    promotion = sections.PromotionConfig.from_values({"max_drawdown": 0.2})
    assert (promotion.max_drawdown, promotion.alias, promotion.beat_baselines) == (0.2, "champion", ("buy_and_hold", "flat"))


def test_the_review_takes_a_typed_config_not_a_dict():
    from tmpipe.config.sections import ReviewConfig
    from tmpipe.review import review_signal

    with pytest.raises(TypeError, match="ReviewConfig"):
        review_signal({}, ReviewConfig.from_values({}).model_dump(), symbol="AAPL")  # type: ignore[arg-type]


def test_a_dict_passed_for_the_webui_or_mlflow_section_is_a_type_check_error(tmp_path):
    """``open_store`` and ``resolve_tracking_uri`` take the typed section only; a dict fails mypy, the section passes."""
    pytest.importorskip("mypy")
    probe = tmp_path / "probe_sections.py"
    probe.write_text(
        "from tmpipe.config.sections import MlflowConfig, WebuiConfig\n"
        "from tmpipe.store.factory import open_store\n"
        "from tmpipe.tracking import resolve_tracking_uri\n"
        "open_store({'backend': 'embedded'})\n"
        "resolve_tracking_uri({'tracking_uri': None}, '/tmp')\n"
        "open_store(WebuiConfig.from_values({}))\n"
        "resolve_tracking_uri(MlflowConfig.from_values({}), '/tmp')\n"
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-error-summary",
         f"--config-file={ROOT / 'pyproject.toml'}", f"--cache-dir={tmp_path / 'cache'}", str(probe)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    errors = re.findall(rf"^{re.escape(str(probe))}:(\d+): error: .*\"(\w+)\" has incompatible type \"dict\[.*"
                        rf"expected \"(\w+)\"", checked.stdout, re.M)
    assert errors == [("4", "open_store", "WebuiConfig"), ("5", "resolve_tracking_uri", "MlflowConfig")], checked.stdout
