"""From the signal writer's answer to a TradingSignal: parsing, guardrails, hard limits, fallback.

The model only proposes the draft keys; everything else (symbol, lineage, status, usage ...)
is filled here, and the result is validated against the schema, so nothing the model or any
outside text says can add keys or change the output schema.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from tmpipe.clock import utc_now
from tmpipe.review.evidence import LINEAGE_KEYS
from tmpipe.review.policy import PolicyDecision, horizon_end
from tmpipe.review.schema_ids import SIGNAL, load_schema, schema_problems

DRAFT_KEYS = ("action", "confidence", "target_position", "stop_loss", "take_profit", "rationale", "risks", "evidence")
_OVERRIDE = re.compile(r"^\s*OVERRIDE:\s*(\S.*)$", re.MULTILINE)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


class SignalDraft(BaseModel):
    """The signal writer's output type for AgentChat structured output (the draft keys of a TradingSignal).

    Its JSON schema is what a json_schema ``response_format`` asks the endpoint for; the
    guardrails below still check every draft, whichever way it was written.
    """

    model_config = ConfigDict(extra="forbid", title="trading_signal_draft")

    action: Literal["BUY", "SELL", "HOLD"]
    confidence: float = Field(ge=0, le=1)
    target_position: float = Field(ge=-1, le=1)
    stop_loss: Optional[float]
    take_profit: Optional[float]
    rationale: str = Field(min_length=1, max_length=2000)
    risks: list[str] = Field(max_length=12)
    evidence: dict[str, Union[float, str, bool, None]]


@lru_cache(maxsize=1)
def _draft_validator():
    import jsonschema

    signal = load_schema(SIGNAL)
    schema = {"type": "object", "additionalProperties": False, "required": list(DRAFT_KEYS),
              "properties": {key: signal["properties"][key] for key in DRAFT_KEYS}}
    return jsonschema.Draft202012Validator(schema)


def parse_draft(text: str) -> tuple[dict | None, list[str]]:
    """The JSON object in the writer's answer (code fences allowed), or the problems finding it."""
    body = _FENCE.sub("", text.strip())
    start = body.find("{")
    if start < 0:
        return None, ["the signal writer's answer contains no JSON object"]
    try:
        value, end = json.JSONDecoder().raw_decode(body, start)
    except ValueError as exc:
        return None, [f"the signal writer's answer is not valid JSON: {exc}"]
    if not isinstance(value, dict):
        return None, ["the signal writer's answer is not a JSON object"]
    problems = []
    if body[:start].strip() or body[end:].strip():
        problems.append("the signal writer's answer has text outside the JSON object")
    return value, problems


def check_draft(draft: dict, decision: PolicyDecision, risk_messages: list[str]) -> tuple[list[str], str | None]:
    """Schema and consistency problems of a draft, and the risk manager's override reason if one is needed."""
    problems = [f"{e.json_path}: {e.message}" for e in
                sorted(_draft_validator().iter_errors(draft), key=lambda e: list(e.absolute_path))]
    if problems:
        return problems, None
    action, position = draft["action"], draft["target_position"]
    stop, take, reference = draft["stop_loss"], draft["take_profit"], decision.reference_price
    if action == "HOLD" and (position != 0 or stop is not None or take is not None):
        problems.append("HOLD needs target_position 0 and null stop_loss/take_profit")
    if (action == "BUY" and position <= 0) or (action == "SELL" and position >= 0):
        problems.append(f"{action} with target_position {position} points the wrong way")
    if action != "HOLD" and reference is not None and None not in (stop, take):
        low, high = (stop, take) if action == "BUY" else (take, stop)
        if not low < reference < high:
            problems.append(f"{action} needs {'stop_loss < reference < take_profit' if action == 'BUY' else 'take_profit < reference < stop_loss'}"
                            f" (reference {reference}, stop_loss {stop}, take_profit {take})")
    override = None
    if action not in (decision.implied_signal, "HOLD"):
        reasons = [match.group(1).strip() for text in risk_messages for match in _OVERRIDE.finditer(text)]
        if reasons:
            override = reasons[-1]
        else:
            problems.append(f"{action} contradicts the inferred {decision.implied_signal} and no risk manager "
                            "gave an 'OVERRIDE: <reason>' line")
    return problems, override


def finalize_signal(draft: dict, decision: PolicyDecision, *, symbol: str, evidence: dict, horizon: str,
                    reviewer_model: str, token_usage: dict, override: str | None,
                    min_confidence: float) -> dict:
    """The TradingSignal from an accepted draft, with the policy's hard limits enforced."""
    action, risks = draft["action"], list(draft["risks"])
    rationale = draft["rationale"]
    limit = None
    if action != "HOLD" and decision.status == "downgraded":
        limit = decision.downgrade_reason()
    elif action != "HOLD" and draft["confidence"] < min_confidence:
        limit = f"written confidence {draft['confidence']:.4f} < {min_confidence:.4f}"
    if limit:
        risks.append(f"guardrail downgraded {action} to HOLD: {limit}")
        rationale = f"Guardrail: {action} downgraded to HOLD ({limit}). Model rationale: {rationale}"
        action = "HOLD"
    if override:
        risks.append(f"risk manager override of inferred {decision.implied_signal}: {override}")
    hold = action == "HOLD"
    signal = {
        "schema_version": 1,
        "symbol": symbol,
        "action": action,
        "confidence": float(draft["confidence"]),
        "target_position": 0.0 if hold else float(draft["target_position"]),
        "horizon": horizon,
        "reference_price": decision.reference_price,
        "stop_loss": None if hold else draft["stop_loss"],
        "take_profit": None if hold else draft["take_profit"],
        "rationale": rationale[:2000],
        "risks": [risk[:500] for risk in risks][:12],
        "evidence": draft["evidence"],
        "review_status": "downgraded" if hold and decision.implied_signal != "HOLD" else "approved",
        "reviewer_model": reviewer_model,
        "token_usage": token_usage,
        "lineage": _lineage(evidence),
        **_bar_and_run(evidence, horizon),
        "created_at": utc_now(),
        "fallback_cause": None,
    }
    return signal


def fallback_signal(cause: dict, *, symbol: str, evidence: dict, horizon: str, reviewer_model: str,
                    token_usage: dict) -> dict:
    """HOLD with confidence 0 and the cause recorded: what a failed review always ends in."""
    return {
        "schema_version": 1,
        "symbol": symbol,
        "action": "HOLD",
        "confidence": 0.0,
        "target_position": 0.0,
        "horizon": horizon,
        "reference_price": evidence["inference"]["reference_price"],
        "stop_loss": None,
        "take_profit": None,
        "rationale": f"Fallback HOLD: the review did not produce an acceptable signal ({cause['kind']}).",
        "risks": [cause["detail"][:500] or cause["kind"]],
        "evidence": {"inference_action": evidence["inference"]["action"],
                     "inference_confidence": evidence["inference"]["confidence"]},
        "review_status": "fallback",
        "reviewer_model": reviewer_model,
        "token_usage": token_usage,
        "lineage": _lineage(evidence),
        **_bar_and_run(evidence, horizon),
        "created_at": utc_now(),
        "fallback_cause": cause,
    }


def _bar_and_run(evidence: dict, horizon: str) -> dict:
    """Which bar the signal is for, until when, on which data, from which model and MLflow run."""
    lineage = evidence["lineage"]
    as_of = evidence["as_of"]
    return {
        "as_of": as_of,
        "horizon_end": horizon_end(as_of, horizon, evidence["backtest"]["test"]["bars_per_year"]),
        "data_sha256": lineage["data_sha256"],
        "model_version": lineage.get("model_version") or lineage["model_uri"],
        "mlflow_run_id": lineage["mlflow_run_id"],
        "mlflow_run_url": lineage.get("mlflow_run_url"),
    }


def _lineage(evidence: dict) -> dict:
    return {key: evidence["lineage"][key] for key in LINEAGE_KEYS}


def signal_problems(signal: dict) -> list[str]:
    return schema_problems(signal, SIGNAL)
