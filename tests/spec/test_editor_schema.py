"""The bundled schema editors and check-jsonschema use says what `tmpipe validate` says.

Where it cannot (docs/factory.md, "What only tmpipe validate checks"), the fixture is listed
in ONLY_TMPIPE_VALIDATE, and the test checks that the schema really does accept it.
"""

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from jsonschema import Draft202012Validator

from tmpipe.cli import main
from tmpipe.spec.loader import validate_paths
from tmpipe.spec.yaml_positions import load_positioned

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "schemas/bundled/pipeline_spec.schema.json"
SHIPPED = sorted((ROOT / "dag_specs").glob("*.yaml"))
BROKEN = sorted((ROOT / "tests/spec/broken").glob("*.yaml"))

# Broken fixtures only tmpipe validate rejects, and the check JSON Schema cannot express.
ONLY_TMPIPE_VALIDATE = {
    "epochs_over_limit.yaml": "a limit across keys (defaults.trademaster.epochs > limits.max_epochs)",
    "lookback_over_limit_in_symbol.yaml": "a limit across keys (symbols.SPX.data.lookback > limits.max_lookback)",
}


def _schema_rejects(files: list[Path]) -> set[str]:
    """Files check-jsonschema fails (schema errors or YAML it cannot parse), by name."""
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(BUNDLE), "-o", "json", *map(str, files)],
        capture_output=True, text=True,
    )
    report = json.loads(result.stdout)
    return {Path(e["filename"]).name for e in report["errors"] + report["parse_errors"]}


def test_the_committed_bundle_is_what_tmpipe_schema_prints():
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    assert result.stdout == BUNDLE.read_text(), "run: tmpipe schema > schemas/bundled/pipeline_spec.schema.json"


def test_the_bundle_is_self_contained():
    bundle = json.loads(BUNDLE.read_text())
    Draft202012Validator.check_schema(bundle)
    assert "urn:tmpipe:" not in BUNDLE.read_text()
    validator = Draft202012Validator(bundle)  # no registry: every $ref must resolve inside the document
    for path in SHIPPED:
        assert list(validator.iter_errors(load_positioned(path.read_text(), str(path)).data)) == []


def test_every_key_has_a_description_for_hover_text():
    bundle = json.loads(BUNDLE.read_text())
    missing = []

    def walk(node, where):
        if isinstance(node, dict):
            for key, prop in node.get("properties", {}).items():
                if not (isinstance(prop, dict) and prop.get("description")):
                    missing.append(f"{where}.{key}")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(bundle, "#")
    assert missing == []


def test_check_jsonschema_accepts_the_shipped_specs():
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(BUNDLE), *map(str, SHIPPED)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(SHIPPED) >= 2


def test_the_schema_verdict_equals_tmpipe_validate_on_shipped_specs_and_broken_fixtures():
    files = SHIPPED + BROKEN
    rejected_by_schema = _schema_rejects(files)
    rejected_by_tmpipe = {Path(p.file).name for p in validate_paths(files)}
    assert set(ONLY_TMPIPE_VALIDATE) <= rejected_by_tmpipe
    assert rejected_by_schema == rejected_by_tmpipe - set(ONLY_TMPIPE_VALIDATE)
    assert {p.name for p in BROKEN} <= rejected_by_tmpipe
