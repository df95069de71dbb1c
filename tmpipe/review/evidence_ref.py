"""The evidence pack is stored once and referenced.

The one stored copy is ``review/evidence.json`` in the symbol's MLflow run (``tmpipe review run
--out DIR`` writes ``DIR/evidence.json``), written as its canonical JSON bytes (sorted keys, no
spaces, UTF-8: :func:`tmpipe.review.trace.canonical`). The trace, and so the WebUI ``llm``
artifact, carries ``evidence: {uri, sha256, bytes}`` instead of a copy; the reference is part of
the trace body, so the hash chain seals it. The trace's prompts still hold the pack as the model
was shown it: that is the record of what the model saw, not a stored copy.

``uri`` is ``runs:/<run_id>/review/evidence.json`` (an MLflow artifact URI; a backfill's packs are
``runs:/<run_id>/backfill/evidence/<dag_run_id>.json`` in its run), a path relative to the
directory holding the trace, or null when the pack was not stored. A reader fetches the bytes and checks their size and sha256 before it
trusts them.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tmpipe.errors import ReviewError
from tmpipe.review.trace import canonical, sha256_hex

EVIDENCE_FILE = "evidence.json"
MLFLOW_SCHEME = "runs:/"


def evidence_bytes(evidence: dict) -> bytes:
    """The canonical bytes of an evidence pack: what evidence.json holds and what the reference hashes."""
    return canonical(evidence)


def evidence_reference(evidence: dict, uri: str | None) -> dict[str, Any]:
    """``{uri, sha256, bytes}`` of the pack's canonical bytes."""
    data = evidence_bytes(evidence)
    return {"uri": uri, "sha256": sha256_hex(data), "bytes": len(data)}


def run_artifact_uri(run_id: str, artifact_path: str) -> str:
    """The MLflow artifact URI of ``artifact_path`` in run ``run_id``."""
    return f"{MLFLOW_SCHEME}{run_id}/{artifact_path}"


NOT_STORED = "pack not stored (the trace's evidence.uri is null)"


@dataclass(frozen=True)
class EvidenceCheck:
    """The stored bytes of a referenced pack (None when they could not be fetched) and what is wrong with them."""

    data: bytes | None
    problems: list[str]


def check_evidence(reference: dict, *, tracking_uri: str | None = None, base_dir: Path | None = None) -> EvidenceCheck:
    """Fetch the pack a trace references and compare it with the reference; a fetch error is a problem too.

    The one check behind persist, ``tmpipe review verify`` and ``tmpipe review evidence``, so the
    three word the same problem alike.
    """
    uri = reference["uri"]
    if uri is None:
        return EvidenceCheck(None, [f"evidence: {NOT_STORED}"])
    try:
        data = _fetch(uri, tracking_uri=tracking_uri, base_dir=base_dir)
    except ReviewError as exc:
        return EvidenceCheck(None, [f"evidence: {exc}"])
    return EvidenceCheck(data, _differences(reference, data))


def read_evidence(reference: dict, *, tracking_uri: str | None = None, base_dir: Path | None = None) -> dict:
    """The evidence pack a trace references, after :func:`check_evidence`; ReviewError naming its problems."""
    checked = check_evidence(reference, tracking_uri=tracking_uri, base_dir=base_dir)
    if checked.data is None or checked.problems:
        raise ReviewError("; ".join(checked.problems))
    return json.loads(checked.data)


def _fetch(uri: str, *, tracking_uri: str | None, base_dir: Path | None) -> bytes:
    """The stored bytes behind a reference's ``uri``: from MLflow (``runs:/``, needs ``tracking_uri``) or a file."""
    if uri.startswith(MLFLOW_SCHEME):
        run_id, _, artifact_path = uri.removeprefix(MLFLOW_SCHEME).partition("/")
        if tracking_uri is None:
            raise ReviewError(f"{uri}: an MLflow tracking URI is needed to read it")
        from mlflow.exceptions import MlflowException

        from tmpipe.tracking import client_for

        with tempfile.TemporaryDirectory(prefix="tmpipe-evidence-") as scratch:
            try:
                local = client_for(tracking_uri).download_artifacts(run_id, artifact_path, scratch)
                return Path(local).read_bytes()
            except MlflowException as exc:
                raise ReviewError(f"{uri}: {exc.message}") from exc  # the tracking URI may hold credentials
            except OSError as exc:
                raise ReviewError(f"{uri}: cannot read: {exc.strerror or exc}") from exc
    path = Path(uri)
    if path.is_absolute() or ".." in path.parts:
        raise ReviewError(f"{uri}: an evidence path must be relative to the trace's directory")
    try:
        return ((base_dir or Path.cwd()) / path).read_bytes()
    except OSError as exc:
        raise ReviewError(f"{uri}: cannot read: {exc.strerror or exc}") from exc


def _differences(reference: dict, data: bytes) -> list[str]:
    """What differs between the stored bytes and the trace's reference (empty when they match)."""
    where, problems = reference["uri"], []
    if len(data) != reference["bytes"]:
        problems.append(f"tampered: {where} has {len(data)} bytes, the trace's evidence reference {reference['bytes']}")
    digest = sha256_hex(data)
    if digest != reference["sha256"]:
        problems.append(f"tampered: {where} has sha256 {digest[:16]}..., the trace's evidence reference "
                        f"{reference['sha256'][:16]}...")
    return problems
