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
UNPROCESSABLE = 422


def check_artifact(artifact: ArtifactCreate) -> None:
    """The content matches its type's schema and names the artifact's own symbol."""
    problems = _problems("content", artifact.content, ARTIFACT_SCHEMAS[artifact.artifact_type])
    if not problems and artifact.content.get("symbol") != artifact.symbol:
        problems = [f"content.symbol: {artifact.content.get('symbol')!r} is not the artifact's symbol {artifact.symbol!r}"]
    _raise_if(problems, f"{artifact.artifact_type} artifact")


def check_link_config(config: dict[str, Any]) -> None:
    """A link config is one configuration layer: schemas/stage_config.schema.json, and a run
    layer, so it may not name an endpoint, a secret, a file or the promotion gate."""
    problems = _problems("config", config, schemas.STAGE_CONFIG)
    if not problems:
        doc = PositionedDocument(file="config", data=config)
        problems = [f"config.{p.path.removeprefix('$.')}: {p.message}" for p in operator_only_problems(doc, WEBUI_LINK)]
    _raise_if(problems, "link config")


def _problems(field: str, value: Any, schema_id: str) -> list[str]:
    found = validate_document(PositionedDocument(file=field, data={field: value}), schema_id, root=(field,))
    return [f"{problem.path}: {problem.message}" for problem in found]


def _raise_if(problems: list[str], what: str) -> None:
    if problems:
        raise StoreError(f"invalid {what}: " + "; ".join(problems), status=UNPROCESSABLE)
