"""What the store accepts: artifacts that match their schema, link configs that match the stage config.

Both backends check here, so a bad write is refused the same way embedded and over HTTP
(422, naming each field), instead of reaching a reader that trusts the content.
"""

from __future__ import annotations

from typing import Any

from tmpipe.errors import StoreError
from tmpipe.config.layers import WEBUI_LINK
from tmpipe.spec import schemas
from tmpipe.spec.trust import operator_only_problems
from tmpipe.spec.validation import validate_document
from tmpipe.spec.yaml_positions import PositionedDocument
from tmpipe.store.models import ArtifactCreate

ARTIFACT_SCHEMAS = {"signal": "urn:tmpipe:trading_signal", "llm": "urn:tmpipe:llm_artifact",
                    "signal_score": "urn:tmpipe:signal_score"}
SCORE_TYPE = "signal_score"
UNPROCESSABLE = 422
CONFLICT = 409


def check_artifact(artifact: ArtifactCreate) -> None:
    """The content matches its type's schema and names the artifact's own symbol; a score names its graded signal
    in ``graded_signal_id`` and its scoring run (the artifact's dag_id and dag_run_id) in ``content.scored_by``."""
    problems = _problems("content", artifact.content, ARTIFACT_SCHEMAS[artifact.artifact_type])
    if not problems and artifact.content.get("symbol") != artifact.symbol:
        problems = [f"content.symbol: {artifact.content.get('symbol')!r} is not the artifact's symbol {artifact.symbol!r}"]
    if not problems:
        problems = _graded_signal_problems(artifact)
    raise_if(problems, f"{artifact.artifact_type} artifact")


def _graded_signal_problems(artifact: ArtifactCreate) -> list[str]:
    if artifact.artifact_type != SCORE_TYPE:
        return [] if artifact.graded_signal_id is None else [
            f"graded_signal_id: only a {SCORE_TYPE} artifact names a graded signal, not a {artifact.artifact_type}"]
    if artifact.graded_signal_id is None:
        return [f"graded_signal_id: a {SCORE_TYPE} artifact names the signal artifact it grades"]
    problems = []
    named = artifact.content["signal"]["artifact_id"]
    if named != artifact.graded_signal_id:
        problems.append(f"content.signal.artifact_id: {named} is not graded_signal_id {artifact.graded_signal_id}")
    scorer = {"dag_id": artifact.dag_id, "dag_run_id": artifact.dag_run_id}
    if artifact.content["scored_by"] != scorer:
        problems.append(f"content.scored_by: {artifact.content['scored_by']} is not the artifact's own run {scorer} "
                        "(a score is written under the scoring run's identity)")
    return problems


def graded_signal_mismatch(score: ArtifactCreate, graded: dict[str, Any]) -> list[str]:
    """What a score says of its graded signal that the stored signal ``graded`` (an artifact row) contradicts."""
    if graded["artifact_type"] != "signal":
        return [f"graded_signal_id: artifact {score.graded_signal_id} is a {graded['artifact_type']}, not a signal"]
    said = score.content["signal"]
    problems = [f"content.signal.{key}: {said[key]!r} is not the graded signal's {graded[key]!r}"
                for key in ("dag_id", "dag_run_id") if said[key] != graded[key]]
    if graded["symbol"] != score.symbol:
        problems.append(f"graded_signal_id: artifact {score.graded_signal_id} is a signal of {graded['symbol']}, "
                        f"not of {score.symbol}")
    return problems


def check_link_config(config: dict[str, Any]) -> None:
    """A link config is one configuration layer: schemas/stage_config.schema.json, and a run
    layer, so it may not name an endpoint, a secret, a file or the promotion gate."""
    problems = _problems("config", config, schemas.STAGE_CONFIG)
    if not problems:
        doc = PositionedDocument(file="config", data=config)
        problems = [f"config.{p.path.removeprefix('$.')}: {p.message}" for p in operator_only_problems(doc, WEBUI_LINK)]
    raise_if(problems, "link config")


def _problems(field: str, value: Any, schema_id: str) -> list[str]:
    found = validate_document(PositionedDocument(file=field, data={field: value}), schema_id, root=(field,))
    return [f"{problem.path}: {problem.message}" for problem in found]


def raise_if(problems: list[str], what: str) -> None:
    if problems:
        raise StoreError(f"invalid {what}: " + "; ".join(problems), status=UNPROCESSABLE)
