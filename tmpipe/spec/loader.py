"""Load a pipeline spec or a WebUI link config: parse, validate, check limits, type."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tmpipe.errors import SpecError
from tmpipe.spec import schemas
from tmpipe.spec.model import DagSettings, Limits, Spec, SymbolSelectionPolicy
from tmpipe.spec.problems import Problem, duplicate_problems
from tmpipe.spec.trust import operator_only_problems, spec_secret_env_problems
from tmpipe.spec.validation import validate_document
from tmpipe.spec.yaml_positions import PositionedDocument, load_positioned
from tmpipe.spec.yaml_safety import MAX_DOCUMENT_BYTES

# (section, key) of a stage setting -> the spec limit that bounds it.
BOUNDED_KEYS: dict[tuple[str, str], str] = {
    ("trademaster", "epochs"): "max_epochs",
    ("data", "lookback"): "max_lookback",
}


def default_spec_path() -> Path:
    """The spec in ./dag_specs when run from a checkout, else the packaged copy."""
    local = Path("dag_specs/trademaster_autogen_pipeline_workflow.yaml")
    if local.is_file():
        return local
    from importlib.resources import files

    return Path(str(files("tmpipe.dag_specs").joinpath("trademaster_autogen_pipeline_workflow.yaml")))


def read_positioned(path: Path) -> tuple[PositionedDocument, bytes]:
    """Read and parse a spec or link config; a file past the size limit is not even read whole."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        problem = Problem(str(path), 1, 1, "$", f"cannot read the file: {exc.strerror or exc}")
        return PositionedDocument(file=str(path), data=None, problems=[problem]), b""
    if len(raw) > MAX_DOCUMENT_BYTES:
        problem = Problem(str(path), 1, 1, "$", f"the file is larger than the limit of {MAX_DOCUMENT_BYTES:,} bytes")
        return PositionedDocument(file=str(path), data=None, problems=[problem]), raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line_start = before.rfind(b"\n") + 1
        column = len(before[line_start:].decode("utf-8")) + 1
        message = f"the file is not UTF-8 text: byte 0x{raw[exc.start]:02x} cannot be decoded (save it as UTF-8)"
        problem = Problem(str(path), before.count(b"\n") + 1, column, "$", message)
        return PositionedDocument(file=str(path), data=None, problems=[problem]), raw
    return load_positioned(text, str(path)), raw


def spec_problems(doc: PositionedDocument) -> list[Problem]:
    """Every problem of a spec document: syntax, duplicates, schema, then limits."""
    if doc.problems or doc.data is None:
        return sorted(doc.problems)
    if not isinstance(doc.data, dict):
        return [doc.problem((), "a spec must be a mapping of keys such as dag, defaults, symbols")]
    problems = validate_document(doc, schemas.PIPELINE_SPEC)
    if not problems:
        problems = _limit_problems(doc) + spec_secret_env_problems(doc)
    return sorted(problems)


def _limit_problems(doc: PositionedDocument) -> list[Problem]:
    limits = _with_defaults(doc.data)["limits"]
    layers: list[tuple[tuple, dict[str, Any]]] = [(("defaults",), doc.data.get("defaults", {}))]
    layers += [(("symbols", sym), cfg) for sym, cfg in doc.data.get("symbols", {}).items()]
    problems = []
    for prefix, layer in layers:
        for (section, key), limit in BOUNDED_KEYS.items():
            value = layer.get(section, {}).get(key)
            if value is not None and value > limits[limit]:
                problems.append(
                    doc.problem((*prefix, section, key), f"{value} exceeds limits.{limit} = {limits[limit]}")
                )
    return problems


def load_spec(path: str | Path | None = None) -> Spec:
    """Load and validate a spec; raise ``SpecError`` listing every problem at once."""
    spec_path = Path(path) if path else default_spec_path()
    if not spec_path.is_file():
        raise SpecError([Problem(str(spec_path), 1, 1, "$", "no such spec file")])
    doc, raw = read_positioned(spec_path)
    problems = spec_problems(doc)
    if problems:
        raise SpecError(problems)
    return build_spec(doc, hashlib.sha256(raw).hexdigest(), raw.decode("utf-8"))


def build_spec(doc: PositionedDocument, sha256: str, text: str = "") -> Spec:
    data = doc.data
    settings = _with_defaults(data)
    dag = settings["dag"]
    return Spec(
        path=doc.file,
        sha256=sha256,
        document=doc,
        dag=DagSettings(**{**dag, "tags": tuple(dag["tags"])}),
        default_mode=settings["modes"]["default"],
        limits=Limits(**settings["limits"]),
        symbol_selection=SymbolSelectionPolicy(**settings["symbol_selection"]),
        demo_symbols=tuple(settings["demo_symbols"]),
        defaults=data.get("defaults", {}),
        symbols=data.get("symbols", {}),
        secret_env_pattern=settings["security"]["secret_env_pattern"],
        text=text,
    )


def link_config_problems(doc: PositionedDocument) -> list[Problem]:
    if doc.problems or doc.data is None:
        return sorted(doc.problems)
    if not isinstance(doc.data, dict):
        return [doc.problem((), "a link config must be a JSON object of stage sections")]
    return sorted(validate_document(doc, schemas.STAGE_CONFIG) + operator_only_problems(doc, "webui link config"))


def validate_paths(paths: list[Path]) -> list[Problem]:
    """``tmpipe validate``: specs (*.yaml, *.yml) and link configs (*.json), dirs recursed.

    Valid specs in one folder that share a dag_id are problems too: that folder's DAGs are
    built together, one per dag_id.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
        else:
            files.append(path)
    problems: list[Problem] = []
    dag_ids: dict[tuple[Path, str], list[str]] = {}
    for file in files:
        if not file.is_file():
            problems.append(Problem(str(file), 1, 1, "$", "no such file"))
            continue
        doc, _ = read_positioned(file)
        if file.suffix == ".json":
            problems += link_config_problems(doc)
            continue
        found = spec_problems(doc)
        problems += found
        if not found:
            dag_id = _with_defaults(doc.data)["dag"]["dag_id"]
            dag_ids.setdefault((file.parent.resolve(), dag_id), []).append(str(file))
    for (_, dag_id), claimed_by in dag_ids.items():
        if len(claimed_by) > 1:
            problems += duplicate_problems(dag_id, claimed_by)
    return problems


def _with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """The spec's own settings (dag, modes, limits, ...) filled from the schema; ``defaults`` and
    ``symbols`` stay partial, the config resolver layers them."""
    return schemas.fill_defaults(schemas.PIPELINE_SPEC, {k: v for k, v in data.items() if k not in ("defaults", "symbols")})
