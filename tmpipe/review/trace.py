"""The reasoning trace (the ``llm`` artifact): ordered entries sealed by a sha256 hash chain.

Chain: ``body_sha256 = sha256(canonical(trace without entries, chain, timing))``; entry *i*'s
``sha256 = sha256(previous hash + canonical(entry without sha256 and timing))`` with the
body hash as the first "previous"; ``head`` is the last entry's hash. Timing differs between
otherwise identical runs, so it stays out of the chain and is sealed by ``timing_sha256``
instead. Editing any character of a sealed trace breaks a hash or the schema.

The chain alone proves only self-consistency: whoever edits a trace can recompute it. Copies
of the head kept elsewhere (see :mod:`tmpipe.review.anchors`) and, when
``TMPIPE_TRACE_HMAC_KEY`` is set, ``chain.hmac`` (HMAC-SHA256 of the chain) catch a resealed trace.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tmpipe.redaction import redact_secrets
from tmpipe.review.schema_ids import TRACE, schema_problems

_UNCHAINED = ("sha256", "timing")
HMAC_KEY_ENV = "TMPIPE_TRACE_HMAC_KEY"
HMAC_ALGORITHM = "hmac-sha256"


@dataclass(frozen=True)
class TraceVerification:
    """``ok`` when the schema holds and every hash recomputes; ``problems`` says what does not."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _body(trace: dict) -> dict:
    return {key: value for key, value in trace.items() if key not in ("entries", "chain", "timing")}


def _entry_hash(previous: str, entry: dict) -> str:
    return sha256_hex(previous.encode() + canonical({k: v for k, v in entry.items() if k not in _UNCHAINED}))


def _timing_hash(trace: dict) -> str:
    return sha256_hex(canonical([trace.get("timing")] + [entry.get("timing") for entry in trace.get("entries", [])]))


def seal(trace: dict) -> dict:
    """Number the entries and fill every hash; returns the same dict."""
    previous = body = sha256_hex(canonical(_body(trace)))
    for index, entry in enumerate(trace["entries"]):
        entry["index"] = index
        entry["sha256"] = previous = _entry_hash(previous, entry)
    trace["chain"] = {"algorithm": "sha256", "body_sha256": body, "head": previous, "timing_sha256": _timing_hash(trace)}
    return trace


def hmac_key() -> bytes | None:
    """The signing key from ``TMPIPE_TRACE_HMAC_KEY``, or None; it is only ever used, never written."""
    key = os.environ.get(HMAC_KEY_ENV)
    return key.encode() if key else None


def _chain_mac(chain: dict, key: bytes) -> str:
    signed = canonical({name: value for name, value in chain.items() if name != "hmac"})
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def sign(trace: dict, key: bytes | None) -> dict:
    """Add ``chain.hmac`` over the sealed chain (head, body and timing hashes) when there is a key."""
    if key:
        trace["chain"]["hmac"] = {"algorithm": HMAC_ALGORITHM, "value": _chain_mac(trace["chain"], key)}
    return trace


def signature_check(trace: dict, key: bytes | None) -> tuple[str | None, str]:
    """(problem or None, status) of a verified trace's ``chain.hmac`` under ``key``.

    With a key an unsigned trace fails: stripping the signature must not be a way around it.
    """
    signature = trace["chain"].get("hmac")
    if key is None:
        return None, "unsigned" if signature is None else f"signed, not checked ({HMAC_KEY_ENV} is not set)"
    if signature is None:
        return f"unsigned: the trace has no chain.hmac but {HMAC_KEY_ENV} is set", "unsigned"
    if not hmac.compare_digest(signature["value"], _chain_mac(trace["chain"], key)):
        return (f"signature invalid: chain.hmac does not match the chain under {HMAC_KEY_ENV} "
                "(the trace was resealed, or signed with another key)"), "signature invalid"
    return None, f"{HMAC_ALGORITHM} signature valid"


def verify_trace(trace: dict) -> TraceVerification:
    """Check the trace against its schema and recompute the hash chain."""
    if not isinstance(trace, dict):
        return TraceVerification(False, ["the trace is not a JSON object"])
    problems = schema_problems(trace, TRACE)
    if problems:
        return TraceVerification(False, problems)
    try:
        previous = sha256_hex(canonical(_body(trace)))
    except ValueError as exc:  # NaN or infinity smuggled into the body
        return TraceVerification(False, [f"the trace body cannot be hashed: {exc}"])
    chain = trace["chain"]
    if previous != chain["body_sha256"]:
        problems.append("chain.body_sha256 does not match the trace body (a header field was edited)")
    for position, entry in enumerate(trace["entries"]):
        if entry["index"] != position:
            problems.append(f"entries[{position}].index is {entry['index']} (entries were reordered or removed)")
        expected = _entry_hash(previous, entry)
        if entry["sha256"] != expected:
            problems.append(f"entries[{position}].sha256 does not match its content and the previous hash")
        previous = entry["sha256"]
    if (trace["entries"] and chain["head"] != previous) or (not trace["entries"] and chain["head"] != chain["body_sha256"]):
        problems.append("chain.head is not the last entry's hash (entries were appended or truncated)")
    if _timing_hash(trace) != chain["timing_sha256"]:
        problems.append("chain.timing_sha256 does not match the timing fields (a timestamp or duration was edited)")
    return TraceVerification(not problems, problems)


class _RedactingFilter(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        clean = redact_secrets(message, self._secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_text:
            record.exc_text = redact_secrets(record.exc_text, self._secrets)
        return True


@contextmanager
def redacting_logs(secrets: list[str]):
    """While active, log records reaching the root's or the model libraries' handlers have secrets removed.

    Endpoints may echo the key in an error body, and autogen_core logs agent failures verbatim.
    """
    secrets = [secret for secret in secrets if secret]
    if not secrets:
        yield
        return
    log_filter = _RedactingFilter(secrets)
    loggers = [logging.getLogger(name) for name in ("", "autogen_core", "autogen_agentchat", "openai", "httpx")]
    handlers = {handler for logger in loggers for handler in logger.handlers}
    for target in [*loggers, *handlers]:
        target.addFilter(log_filter)
    try:
        yield
    finally:
        for target in [*loggers, *handlers]:
            target.removeFilter(log_filter)


def without_timing(value: Any) -> Any:
    """A copy without timing fields and their seal: what two runs on the same evidence must share."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in ("timing", "timing_sha256", "created_at")}
    if isinstance(value, list):
        return [without_timing(item) for item in value]
    return value


def entry(attempt: int, kind: str, source: str, type_: str, content: Any, token_usage: dict | None = None,
          timing: dict | None = None) -> dict:
    """An unsealed trace entry (index and sha256 are set by :func:`seal`)."""
    return {"index": 0, "attempt": attempt, "kind": kind, "source": source, "type": type_, "content": content,
            "token_usage": token_usage, "timing": timing, "sha256": "0" * 64}


def interleave(attempt: int, messages: list, calls: list[dict]) -> list[dict]:
    """Entries for one attempt: each agent message preceded by the model calls up to the one that produced it."""
    out, pointer = [], 0
    for message in messages:
        produced = next((i for i in range(pointer, len(calls)) if calls[i]["agent"] == message.source), None)
        if produced is not None:
            out += [_call_entry(call) for call in calls[pointer:produced + 1]]
            pointer = produced + 1
        out.append(_message_entry(attempt, message))
    out += [_call_entry(call) for call in calls[pointer:]]
    return out


def _call_entry(call: dict) -> dict:
    content = {"agent": call["agent"], "prompts": call["prompts"], "response": call["response"],
               "finish_reason": call["finish_reason"], "error": call["error"],
               **{key: call[key] for key in ("fingerprint", "response_format", "rate_limited", "cost_usd") if key in call}}
    return entry(call["attempt"], "model_call", call["agent"], "ChatCompletion", content, call["usage"], call["timing"])


def _message_entry(attempt: int, message: Any) -> dict:
    usage = message.models_usage
    content = message.content if isinstance(getattr(message, "content", None), str) else message.to_text()
    return entry(attempt, "message", message.source, message.type, content,
                 None if usage is None else {"prompt": usage.prompt_tokens, "completion": usage.completion_tokens},
                 {"started_at": message.created_at.isoformat(), "finished_at": None, "duration_ms": None})
