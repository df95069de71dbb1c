"""review_signal: run the team with bounded retries and turn the result into a signal and a sealed trace."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from tmpipe.clock import utc_now
from tmpipe.config.sections import ModelClientConfig, ReviewConfig
from tmpipe.redaction import redact_secrets
from tmpipe.errors import ReviewError
from tmpipe.review.cost import CostBudget
from tmpipe.review.evidence_ref import evidence_reference
from tmpipe.review.anchors import OUTCOME_KEYS
from tmpipe.review.clients import (
    ApiKeyResolver,
    ClientSet,
    autogen_failures_to_debug_log,
    build_clients,
    classify_error,
    recording_sha256,
)
from tmpipe.review.mlflow_tracing import review_span
from tmpipe.review.policy import evaluate_policy
from tmpipe.review.schema_ids import EVIDENCE, REVIEW_SECTION, schema_problems
from tmpipe.review.signal import SignalDraft, check_draft, fallback_signal, finalize_signal, parse_draft, signal_problems
from tmpipe.review.team import TERMINATIONS, build_team, plan_team, task_message
from tmpipe.review.trace import entry, hmac_key, interleave, redacting_logs, seal, sign

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReviewOutcome:
    """The TradingSignal and the sealed reasoning trace of one review."""

    signal: dict
    trace: dict
    recording: dict | None = None  # every answered model request by fingerprint; None without a model client


def review_signal(evidence: dict, review_config: ReviewConfig, *, symbol: str,
                  api_key_resolver: ApiKeyResolver | None = None, evidence_uri: str | None = None,
                  spent_elsewhere: Callable[[], float] | None = None,
                  publish_spend: Callable[[float], None] | None = None) -> ReviewOutcome:
    """Review ``evidence`` with the configured team; always returns a schema-valid signal.

    Raises ReviewError only for a bad config or evidence pack; model failures, timeouts and
    invalid answers end in a ``fallback`` HOLD with the cause recorded. ``spent_elsewhere``
    (what the DAG run's other symbols spent so far, USD) and ``publish_spend`` (this symbol's
    running spend) let ``review.budget.per_dag_run_usd`` span symbols reviewed in other processes.
    The trace references the evidence pack (``evidence_uri``: where the caller stores its canonical
    bytes, see :mod:`tmpipe.review.evidence_ref`) instead of holding a copy.
    """
    if not isinstance(review_config, ReviewConfig):
        raise TypeError(f"review_signal takes a ReviewConfig (tmpipe.config.sections), not {type(review_config).__name__}; "
                        "build one with ReviewConfig.from_values(...) or ResolvedConfig.review")
    config = review_config
    problems = (schema_problems(config.model_dump(mode="json"), REVIEW_SECTION)
                + [f"evidence {p}" for p in schema_problems(evidence, EVIDENCE)])
    if problems:
        raise ReviewError(f"{symbol}: cannot review: " + "; ".join(problems), symbol=symbol)
    limits = config.budget
    budget = None
    if limits.per_symbol_usd is not None or limits.per_dag_run_usd is not None:
        budget = CostBudget(limits.per_symbol_usd, limits.per_dag_run_usd, spent_elsewhere or (lambda: 0.0),
                            publish_spend or (lambda usd: None))
    coroutine = _review(evidence, config, symbol, api_key_resolver, budget, evidence_uri)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    # Called from inside an event loop (a notebook, an async operator): run on a private loop.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _review(evidence: dict, config: ReviewConfig, symbol: str, resolver: ApiKeyResolver | None,
                  budget: CostBudget | None, evidence_uri: str | None = None) -> ReviewOutcome:
    started_at, clock = utc_now(), time.perf_counter()
    plan = plan_team(config, symbol)
    decision = evaluate_policy(evidence, config)
    cause, termination = None, "none"
    try:
        clients = build_clients(config, resolver)
    except ReviewError as exc:
        clients = None
        cause = {"kind": "configuration", "detail": str(exc), "http_status": None}
        termination = "configuration"
    with redacting_logs(clients.secrets if clients else []), autogen_failures_to_debug_log(), \
            review_span(symbol) as span:
        if clients is not None and clients.reviewer["is_llm"]:
            clients.log.budget = budget
        outcome = await _converse(evidence, config, symbol, plan, decision, clients, cause, termination, started_at, clock,
                                  evidence_uri=evidence_uri)
        if isinstance(outcome, _BudgetStop):
            # The LLM may not spend more: the rules model reviews instead, the cause and the spend recorded.
            rules_config = config.model_copy(update={"model_client": config.model_client.model_copy(update={"provider": "rules"})})
            outcome = await _converse(evidence, rules_config, symbol, plan, decision, build_clients(rules_config), None,
                                      "none", started_at, clock, before_budget=outcome, evidence_uri=evidence_uri)
        if span is not None:
            span.set_inputs({"symbol": symbol, "evidence": outcome.trace["evidence"]})
            span.set_outputs({"signal": outcome.signal, "trace_head": outcome.trace["chain"]["head"]})
        return outcome


@dataclass(frozen=True)
class _BudgetStop:
    """An LLM conversation stopped by review.budget: its entries, calls, recording and secrets, and the reason."""

    entries: list
    calls: list
    reason: str
    recording: dict
    secrets: list


async def _converse(evidence, config: ReviewConfig, symbol, plan, decision, clients, cause, termination, started_at, clock,
                    before_budget: _BudgetStop | None = None, evidence_uri: str | None = None):
    """The attempts loop, the fallback and the trace (split from _review for the log redaction)."""
    entries: list[dict] = list(before_budget.entries) if before_budget else []
    attempts: list[dict] = []
    signal = None
    budget_left = config.token_budget
    deadline = time.perf_counter() + config.timeout_seconds  # the conversation's clock, not client setup
    if clients:
        clients.log.deadline = deadline  # rate-limit waits must fit in it too
        clients.log.run_identifiers = _run_identifiers(evidence)
    feedback: list[str] | None = None
    for attempt in range(config.max_retries + 1) if clients else ():
        clients.log.attempt = attempt
        time_left, used_before = deadline - time.perf_counter(), _usage(clients)["total"]
        if time_left <= 0 or budget_left <= 0:
            kind = "timeout" if time_left <= 0 else "token_budget"
            cause, termination = {"kind": kind, "detail": f"nothing left of review.{_ALLOWANCE[kind]} before attempt {attempt}",
                                  "http_status": None}, kind
            break
        task = task_message(config, symbol, evidence, feedback)
        result = await _run_attempt(plan, config, clients, task, attempt, budget_left, time_left)
        budget_left -= _usage(clients)["total"] - used_before
        entries += interleave(attempt, result["messages"], [c for c in clients.log.calls if c["attempt"] == attempt])
        fired, error = result["fired"], result["error"]
        if error:
            termination = "timeout" if error["kind"] == "timeout" else "error"
        else:
            termination = next((t for t in TERMINATIONS if t in fired), "none")
        record = {"attempt": attempt, "terminated_by": fired, "stop_reason": result["stop_reason"], "problems": [], "error": error}
        attempts.append(record)
        entries.append(entry(attempt, "termination", "team", "Termination",
                             {"terminated_by": fired, "stop_reason": result["stop_reason"], "error": error}))
        written = [m.to_text() for m in result["messages"] if m.source == plan.writer] or result["unparsed_answers"]
        if error:
            cause = error
            break
        if not written:
            kind = termination if termination in ("token_budget", "timeout", "max_messages") else "invalid_output"
            cause = {"kind": kind, "detail": f"the conversation stopped ({result['stop_reason']}) before "
                                             f"{plan.writer} wrote a signal", "http_status": None}
            break
        draft, problems = parse_draft(written[-1])
        override = None
        if draft is not None:
            risk_texts = [m.to_text() for m in result["messages"] if m.source in plan.risk_managers]
            more, override = check_draft(draft, decision, risk_texts)
            problems += more
        if draft is not None and not problems:
            candidate = finalize_signal(draft, decision, symbol=symbol, evidence=evidence, horizon=config.horizon,
                                        reviewer_model=_reviewer(clients)["model"], token_usage=_tokens(clients),
                                        override=override, min_confidence=config.thresholds.min_confidence)
            problems = signal_problems(candidate)
            signal = None if problems else candidate
        record["problems"] = problems
        entries.append(entry(attempt, "guardrail", "guardrails", "DraftCheck",
                             {"accepted": not problems, "problems": problems, "draft": draft, "override": override}))
        if signal is not None:
            cause = None
            break
        feedback = problems
        cause = {"kind": "invalid_output", "detail": f"signal rejected after {attempt + 1} attempt(s): "
                                                     + "; ".join(problems), "http_status": None}
    if cause is not None and cause["kind"] == "budget" and signal is None:
        await clients.close()
        return _BudgetStop(entries, list(clients.log.calls), cause["detail"].removeprefix("BudgetExhausted: "),
                           redact_secrets(clients.recording(), clients.secrets), list(clients.secrets))
    if before_budget is not None and signal is not None:
        signal["risks"] = (signal["risks"] + [f"reviewed by the rules model: {before_budget.reason}"[:500]])[-12:]
    reviewer = _reviewer(clients, config)
    if signal is None:
        signal = fallback_signal(cause, symbol=symbol, evidence=evidence, horizon=config.horizon,
                                 reviewer_model=reviewer["model"], token_usage=_tokens(clients))
        log.warning("%s: review fell back to HOLD (%s): %s", symbol, cause["kind"], cause["detail"])
    recording = None
    if clients is not None:
        await clients.close()
        recording = redact_secrets(clients.recording(), clients.secrets)
        if before_budget is not None:
            # The LLM's answered calls before the budget stopped it, kept beside the rules model's.
            llm = before_budget.recording
            recording["before_budget"] = {"reason": before_budget.reason, "reviewer": llm["reviewer"],
                                          "structured_output": llm["structured_output"], "calls": llm["calls"]}
    trace = {
        "schema_version": 2,
        "kind": "review_trace",
        "symbol": symbol,
        "reviewer": reviewer,
        "model_client": clients.recorded_config if clients else _recorded_without_client(config.model_client),
        "team": plan.as_record(config),
        "evidence": evidence_reference(evidence, evidence_uri),  # stored once, where evidence_uri says
        "task_prompt": task_message(config, symbol, evidence),
        "attempts": attempts,
        "retries": max(0, len(attempts) - 1),
        "termination_reason": termination,
        "outcome": {key: signal[key] for key in OUTCOME_KEYS},
        "token_usage": _tokens(clients),
        "cost": _cost(clients, before_budget),
        # A replay records the digest of the recording it answered from.
        **({"llm_recording": {"sha256": clients.log.replay_sha256 or recording_sha256(recording),
                              "calls": len(recording["calls"]) + len(recording.get("before_budget", {}).get("calls", [])),
                              "replayed": clients.log.replay is not None}}
           if recording else {}),
        "entries": entries,
        "timing": {"started_at": started_at, "finished_at": utc_now(),
                   "duration_ms": round((time.perf_counter() - clock) * 1000, 3)},
    }
    secrets = (clients.secrets if clients else []) + (before_budget.secrets if before_budget else [])
    trace = sign(seal(redact_secrets(trace, secrets)), hmac_key())
    # The signal records the head; the head covers the trace's outcome, never the signal itself.
    return ReviewOutcome({**redact_secrets(signal, secrets), "trace_head_sha256": trace["chain"]["head"]}, trace, recording)


async def _run_attempt(plan, config: ReviewConfig, clients: ClientSet, task: str, attempt: int, budget: int,
                       time_left: float) -> dict:
    from autogen_agentchat.base import TaskResult
    from autogen_agentchat.messages import BaseChatMessage
    from autogen_core import CancellationToken

    built = build_team(plan, config, clients, token_budget=budget, timeout_seconds=time_left)
    messages: list = []
    outcome: dict[str, Any] = {"stop_reason": None, "error": None, "unparsed_answers": []}

    token = CancellationToken()

    async def consume() -> None:
        async for item in built.team.run_stream(task=task, cancellation_token=token):
            if isinstance(item, TaskResult):
                outcome["stop_reason"] = item.stop_reason
            elif isinstance(item, BaseChatMessage):
                messages.append(item)

    runner = asyncio.ensure_future(consume())
    try:
        await asyncio.wait_for(asyncio.shield(runner), timeout=time_left)
    except asyncio.TimeoutError:
        # Cancelling only our consumer would leave the team's shutdown waiting for the
        # in-flight model call; the token aborts that call, so the deadline holds.
        token.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        built.fired.append("timeout")
        outcome["error"] = {"kind": "timeout", "detail": f"review.timeout_seconds={config.timeout_seconds} "
                                                         f"reached during attempt {attempt}", "http_status": None}
    except Exception as exc:  # AgentChat wraps agent failures; the recorder kept the real one
        calls = [c for c in clients.log.calls if c["attempt"] == attempt]
        failed = [c["error"] for c in calls if c["error"]]
        if not failed and clients.structured and _writer_answer_invalid(calls, plan.writer):
            # The writer's structured answer did not validate into the draft model: the guardrails
            # read the answer as written and the attempt is retried with their problems.
            outcome["unparsed_answers"] = [calls[-1]["response"]]
        else:
            outcome["error"] = failed[-1] if failed else classify_error(exc)
    return {"messages": messages, "fired": list(dict.fromkeys(built.fired)), **outcome}


def _writer_answer_invalid(calls: list[dict], writer: str) -> bool:
    """Whether the attempt's last call is the writer's answer and it does not validate into the draft model."""
    if not calls or calls[-1]["agent"] != writer or calls[-1]["response"] is None:
        return False
    try:
        SignalDraft.model_validate_json(calls[-1]["response"])
    except ValueError:
        return True
    return False


def _cost(clients: ClientSet | None, before_budget: _BudgetStop | None) -> dict:
    """USD of the review's calls (null when a call's model has no price), and the budget's verdict."""
    calls = (before_budget.calls if before_budget else []) + (clients.log.calls if clients else [])
    answered = [c for c in calls if c["usage"] is not None]
    unpriced = sum(1 for c in answered if c.get("cost_usd") is None)
    return {"usd": None if unpriced else round(sum(c["cost_usd"] for c in answered), 8), "calls": len(answered),
            "unpriced_calls": unpriced,
            "budget_exhausted": None if before_budget is None else {"reason": before_budget.reason,
                                                                   "fallback": "rules"}}


def _run_identifiers(evidence: dict) -> dict:
    """This run's identifiers in the evidence, as placeholders: what a replay of another run may differ in."""
    keys = ("dag_run_id", "mlflow_run_id", "mlflow_experiment_id", "mlflow_run_url", "model_uri", "model_version")
    lineage = evidence["lineage"]
    return {str(lineage[key]): f"<{key}>" for key in keys if lineage.get(key)}


_ALLOWANCE = {"timeout": "timeout_seconds", "token_budget": "token_budget"}


def _usage(clients: ClientSet | None) -> dict:
    calls = clients.log.calls if clients else []
    prompt = sum(c["usage"]["prompt"] for c in calls if c["usage"])
    completion = sum(c["usage"]["completion"] for c in calls if c["usage"])
    return {"prompt": prompt, "completion": completion, "total": prompt + completion}


def _tokens(clients: ClientSet | None) -> dict:
    usage = _usage(clients)
    return {"prompt": usage["prompt"], "completion": usage["completion"]}


def _reviewer(clients: ClientSet | None, config: ReviewConfig | None = None) -> dict:
    if clients is not None:
        return clients.reviewer
    assert config is not None, "without clients the reviewer is read from the config"
    cfg = config.model_client
    return {"provider": cfg.provider, "model": f"{cfg.provider}:{cfg.model}", "is_llm": cfg.provider == "openai",
            "label": "no model client could be set up"}


def _recorded_without_client(cfg: ModelClientConfig) -> dict:
    """The model client config as the trace records it (JSON, keys sorted)."""
    values = cfg.model_dump(mode="json")
    return {key: values[key] for key in sorted(values)}
