"""Model clients for the review team: choosing the provider, recording every call, naming failures.

The recording wrapper sees exactly what each agent sends and receives, so the trace holds the
prompts as sent, the answers, token usage and timing, and the real exception type of a failed
call (AgentChat itself re-raises agent failures as a bare RuntimeError).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import time
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncGenerator, Callable, Sequence

from autogen_core.models import ChatCompletionClient, CreateResult, ModelInfo, RequestUsage
from pydantic import BaseModel
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from tmpipe.clock import utc_now
from tmpipe.config.sections import ModelClientConfig, ModelPrice, ReviewConfig
from tmpipe.errors import ReviewError
from tmpipe.review.cost import BudgetExhausted, CostBudget, call_cost
from tmpipe.redaction import url_secrets
from tmpipe.review.rules_client import RULES_MODEL_LABEL, RULES_MODEL_NAME, RulesChatCompletionClient

log = logging.getLogger(__name__)
ApiKeyResolver = Callable[[ModelClientConfig], "str | dict | None"]
LLM_RECORDING = "llm_recording"
STRUCTURED_BY_PROVIDER = {"openai": "json_schema", "rules": "text", "replay": "text"}
DEFAULT_RETRY_AFTER_SECONDS = 1.0
ENDPOINT_MODEL_INFO = ModelInfo(vision=False, function_calling=False, json_output=False, family="unknown",
                                structured_output=False, multiple_system_messages=True)


@dataclass
class CallLog:
    """Every model call of one review, in the order the calls started."""

    calls: list[dict] = field(default_factory=list)
    attempt: int = 0
    deadline: float = math.inf  # perf_counter() time by which the symbol's review must end
    identity: dict = field(default_factory=dict)  # model and parameters every request's fingerprint covers
    run_identifiers: dict = field(default_factory=dict)  # value -> placeholder, left out of fingerprints
    replay: dict[str, list[dict]] | None = None  # fingerprint -> recorded answers, when replaying
    replay_sha256: str | None = None  # the replayed recording's digest
    price: ModelPrice | None = None  # USD per million prompt/completion tokens of the model, None when unknown
    budget: CostBudget | None = None

    def spent_usd(self) -> float:
        return sum(c.get("cost_usd") or 0.0 for c in self.calls)

    def fingerprint(self, prompts: list[dict], response_format: dict | None) -> str:
        """sha256 of model, parameters, messages and response format, with the run's identifiers left out.

        A replayed DAG run has other run ids, MLflow ids and model URIs in its evidence; the
        same request otherwise has the same fingerprint.
        """
        messages = []
        for prompt in prompts:
            content = prompt["content"]
            for value, placeholder in sorted(self.run_identifiers.items(), key=lambda item: -len(item[0])):
                content = content.replace(json.dumps(value), json.dumps(placeholder))  # JSON string values only
            messages.append({**prompt, "content": content})
        text = json.dumps({**self.identity, "messages": messages, "response_format": response_format},
                          sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def errors(self) -> list[dict]:
        return [call for call in self.calls if call["error"] is not None]


@dataclass
class ClientSet:
    """A client factory per agent plus what the trace may say about the configuration."""

    for_agent: Callable[[str, str], ChatCompletionClient]
    reviewer: dict
    recorded_config: dict
    secrets: list[str]
    log: CallLog
    closers: list[Callable[[], Any]] = field(default_factory=list)
    structured: bool = False

    async def close(self) -> None:
        for close in self.closers:
            await close()

    def recording(self) -> dict:
        """Every answered request with its fingerprint: what ``provider: replay`` answers from."""
        calls = [{"fingerprint": c["fingerprint"], "agent": c["agent"],
                  "request": {**self.log.identity, "messages": c["prompts"], "response_format": c.get("response_format")},
                  "response": {"content": c["response"], "finish_reason": c["finish_reason"], "usage": c["usage"],
                               "cost_usd": c.get("cost_usd")}}
                 for c in self.log.calls if c["error"] is None and c["response"] is not None]
        return {"schema_version": 1, "kind": LLM_RECORDING, "reviewer": self.reviewer,
                "structured_output": "json_schema" if self.structured else "text", "calls": calls}


def build_clients(review_config: ReviewConfig, api_key_resolver: ApiKeyResolver | None = None) -> ClientSet:
    """Clients for ``review_config.model_client``; raises ReviewError when one cannot be set up."""
    cfg = review_config.model_client
    provider = cfg.provider
    log = CallLog()
    values = cfg.model_dump(mode="json")  # the trace records the config as JSON
    recorded = {key: values[key] for key in sorted(values)}
    mode = output_mode(cfg)
    if provider == "rules":
        recorded = {"provider": "rules", "model": RULES_MODEL_NAME}
        log.price = ModelPrice(prompt_per_1m=0.0, completion_per_1m=0.0)  # computed locally: free
        reviewer = {"provider": "rules", "model": RULES_MODEL_NAME, "is_llm": False, "label": RULES_MODEL_LABEL}
        return ClientSet(lambda name, role: RecordingClient(RulesChatCompletionClient(role, review_config), name, log),
                         reviewer, recorded, [], log)
    if provider == "replay":
        from autogen_ext.models.replay import ReplayChatCompletionClient

        recording = load_recording(cfg.replay_file)
        if recording is not None:
            return _replaying(recording, cfg, recorded, log)
        answers = load_replay_answers(cfg.replay_file)
        shared: ChatCompletionClient = ReplayChatCompletionClient(answers, model_info=ENDPOINT_MODEL_INFO)
        name = Path(str(cfg.replay_file)).name
        reviewer = {"provider": "replay", "model": f"replay:{name}", "is_llm": False,
                    "label": f"replayed answers from {name} (scripted, not an LLM)"}
        recorded["structured_output"] = mode
        return ClientSet(lambda agent, role: RecordingClient(shared, agent, log), reviewer, recorded, [], log,
                         [shared.close], structured=mode == "json_schema")
    if provider == "openai":
        from autogen_ext.models.openai import OpenAIChatCompletionClient

        key, base_url, source = resolve_api_key(cfg, api_key_resolver)
        log.identity = {"model": cfg.model, "temperature": cfg.temperature}
        log.price = cfg.prices.get(cfg.model)
        recorded.update(api_key_source=source, base_url=base_url, client_max_retries=0, structured_output=mode)
        # autogen's config TypedDict says str; openai's client takes None as its default endpoint.
        shared = OpenAIChatCompletionClient(
            model=cfg.model, base_url=base_url, api_key=key,  # type: ignore[arg-type]
            temperature=cfg.temperature, timeout=cfg.timeout_seconds, max_retries=0, model_info=ENDPOINT_MODEL_INFO)
        reviewer = {"provider": "openai", "model": f"openai-compatible:{cfg.model}", "is_llm": True,
                    "label": f"LLM {cfg.model} at {base_url or 'the OpenAI default endpoint'}"}
        secrets = [key, *url_secrets(base_url)]
        return ClientSet(lambda agent, role: RecordingClient(shared, agent, log, cfg.rate_limit_retries),
                         reviewer, recorded, secrets, log, [shared.close], structured=mode == "json_schema")
    raise ReviewError(f"review.model_client.provider {provider!r} is not one of rules|openai|replay")


class ReplayMissing(Exception):
    """A replayed review asked for a request the recording does not hold; nothing is sent anywhere."""


def load_recording(path: str | None) -> dict | None:
    """The LLM recording in ``path`` (``kind: llm_recording``), or None for a plain list of answers."""
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReviewError(f"{path}: cannot read replay answers: {exc}") from exc
    if not isinstance(data, dict) or data.get("kind") != LLM_RECORDING:
        return None
    if not isinstance(data.get("calls"), list) or not isinstance(data.get("reviewer"), dict):
        raise ReviewError(f"{path}: an llm_recording needs 'reviewer' and a list of 'calls'")
    return data


def recording_sha256(recording: dict) -> str:
    return hashlib.sha256(json.dumps(recording, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                          .encode()).hexdigest()


def _replaying(recording: dict, cfg: ModelClientConfig, recorded: dict, log: CallLog) -> ClientSet:
    """Clients that answer each request from ``recording`` by fingerprint and never call out."""
    from autogen_ext.models.replay import ReplayChatCompletionClient

    inert = ReplayChatCompletionClient([], model_info=ENDPOINT_MODEL_INFO)  # model info only; never asked
    log.identity = {key: value for key, value in recording["calls"][0]["request"].items()
                    if key not in ("messages", "response_format")} if recording["calls"] else {}
    log.replay, log.replay_sha256 = {}, recording_sha256(recording)
    for call in recording["calls"]:
        log.replay.setdefault(call["fingerprint"], []).append(call["response"])
    recorded = {**recorded, "replayed_from": Path(str(cfg.replay_file)).name}
    return ClientSet(lambda agent, role: RecordingClient(inert, agent, log), dict(recording["reviewer"]), recorded, [],
                     log, [inert.close], structured=recording["structured_output"] == "json_schema")


def output_mode(cfg: ModelClientConfig) -> str:
    """``json_schema`` or ``text``: the spec's ``structured_output``, ``auto`` resolved per provider.

    The rules model writes its answer as text, so it is always read through the text path.
    """
    mode = cfg.structured_output
    if cfg.provider == "rules" or mode == "auto":
        return STRUCTURED_BY_PROVIDER[cfg.provider]
    return mode


def response_format(model: type[BaseModel]) -> dict:
    """The json_schema ``response_format`` for ``model``; not strict, as the draft's evidence is an open object."""
    return {"type": "json_schema",
            "json_schema": {"name": model.model_config.get("title") or model.__name__, "schema": model.model_json_schema(),
                            "strict": False}}


def retry_after_seconds(exc: BaseException) -> float:
    """The wait a 429 asks for: its Retry-After header in seconds or as an HTTP date, else 1 s."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    if value is None:
        return DEFAULT_RETRY_AFTER_SECONDS
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_SECONDS


def _is_rate_limit(exc: BaseException) -> bool:
    try:
        import openai
    except ImportError:  # pragma: no cover - openai ships with autogen-ext[openai]
        return False
    return isinstance(exc, openai.RateLimitError)


class _AutoGenToDebug(logging.Filter):
    """Moves AutoGen's own warnings and tracebacks to tmpipe's debug log; the trace keeps the failure."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and not record.exc_info:
            return True
        log.debug("AutoGen (%s): %s", record.name, record.getMessage(), exc_info=record.exc_info)
        return False


@contextmanager
def autogen_failures_to_debug_log():
    """While active, AutoGen's error records (agent failures with tracebacks) go to the debug log, not stderr."""
    loggers = [logging.getLogger(name) for name in ("autogen_core", "autogen_agentchat")]
    moved = _AutoGenToDebug()
    for logger in loggers:
        logger.addFilter(moved)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(moved)


def resolve_api_key(cfg: ModelClientConfig, api_key_resolver: ApiKeyResolver | None) -> tuple[str, str | None, str]:
    """The API key, the base URL and where the key came from (the resolver, else the env var api_key_env).

    A resolver returns the key, or ``{"api_key": ..., "base_url": ...}`` when its source (an
    Airflow connection's host) also names the endpoint; the spec's base_url wins when set.
    """
    if api_key_resolver is not None:
        answer = api_key_resolver(cfg)
        key, base_url = (answer.get("api_key"), answer.get("base_url")) if isinstance(answer, dict) else (answer, None)
        if key:
            source = "resolver" + (f" (airflow connection {cfg.airflow_conn_id})" if cfg.airflow_conn_id else "")
            return key, cfg.base_url or base_url, source
    env = cfg.api_key_env
    if env and os.environ.get(env):
        return os.environ[env], cfg.base_url, f"env:{env}"
    raise ReviewError(f"no API key for review.model_client: set the environment variable {env or '(api_key_env unset)'}"
                      + (" or give an api_key_resolver" if api_key_resolver is None else ", the resolver returned none"))


def load_replay_answers(path: str | None) -> list[str]:
    """Answers from a replay file: a JSON list of strings, or ``{"responses": [...]}``."""
    if not path:
        raise ReviewError("review.model_client.provider is replay but replay_file is not set")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReviewError(f"{path}: cannot read replay answers: {exc}") from exc
    answers = data.get("responses") if isinstance(data, dict) else data
    if not isinstance(answers, list) or not all(isinstance(a, (str, dict)) for a in answers):
        raise ReviewError(f"{path}: replay file must be a list of answers or {{\"responses\": [...]}}")
    return [a if isinstance(a, str) else json.dumps(a, sort_keys=True) for a in answers]


def classify_error(exc: BaseException) -> dict:
    """``{kind, detail, http_status}`` for a failed model call or conversation."""
    detail = f"{type(exc).__name__}: {exc}"[:2000]
    import openai
    if isinstance(exc, BudgetExhausted):
        return {"kind": "budget", "detail": detail, "http_status": None}
    if isinstance(exc, ReplayMissing):
        return {"kind": "replay_missing", "detail": detail, "http_status": None}
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return {"kind": "timeout", "detail": detail, "http_status": None}
    if isinstance(exc, openai.APITimeoutError):
        return {"kind": "timeout", "detail": detail, "http_status": None}
    if isinstance(exc, openai.RateLimitError):
        return {"kind": "rate_limited", "detail": detail, "http_status": exc.status_code}
    if isinstance(exc, openai.APIConnectionError):
        return {"kind": "network", "detail": detail, "http_status": None}
    if isinstance(exc, openai.APIStatusError):
        return {"kind": "endpoint_error", "detail": detail, "http_status": exc.status_code}
    return {"kind": "model_error", "detail": detail, "http_status": None}


class RecordingClient(ChatCompletionClient):
    """Delegates to ``inner`` and appends each call (prompts, answer, usage, timing, error) to ``log``."""

    def __init__(self, inner: ChatCompletionClient, agent: str, log: CallLog, rate_limit_retries: int = 0):
        self._inner, self._agent, self._log = inner, agent, log
        self._rate_limit_retries = rate_limit_retries
        self._last = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._total = RequestUsage(prompt_tokens=0, completion_tokens=0)

    async def create(self, messages: Sequence[Any], **kwargs: Any) -> CreateResult:
        call: dict[str, Any] = {"attempt": self._log.attempt, "agent": self._agent, "prompts": [_llm_message(m) for m in messages],
                "response": None, "finish_reason": None, "usage": None, "error": None,
                "timing": {"started_at": utc_now(), "finished_at": None, "duration_ms": None}}
        output_type = kwargs.pop("json_output", None)
        if isinstance(output_type, type) and issubclass(output_type, BaseModel):
            # AgentChat structured output: the endpoint is asked for the model's JSON schema; the
            # answer comes back as text that the agent validates into a StructuredMessage.
            kwargs["extra_create_args"] = {**kwargs.get("extra_create_args", {}), "response_format": response_format(output_type)}
            call["response_format"] = "json_schema"
        elif output_type is not None:
            kwargs["json_output"] = output_type
        call["fingerprint"] = self._log.fingerprint(call["prompts"], kwargs.get("extra_create_args", {}).get("response_format"))
        self._log.calls.append(call)
        started = time.perf_counter()
        try:
            reason = self._log.budget.exhausted(self._log.spent_usd()) if self._log.budget else None
            if reason:
                raise BudgetExhausted(reason)
            if self._log.replay is not None:
                result = self._replayed(call)
            else:
                result = await self._create_honouring_retry_after(messages, call, kwargs)
        except BaseException as exc:
            call["error"] = classify_error(exc) if not isinstance(exc, asyncio.CancelledError) else {
                "kind": "timeout", "detail": "call cancelled when the review timed out", "http_status": None}
            raise
        finally:
            call["timing"].update(finished_at=utc_now(), duration_ms=round((time.perf_counter() - started) * 1000, 3))
        call["response"] = result.content if isinstance(result.content, str) else json.dumps(
            [asdict(c) for c in result.content], sort_keys=True)
        call["finish_reason"] = result.finish_reason
        call["usage"] = {"prompt": result.usage.prompt_tokens, "completion": result.usage.completion_tokens}
        if self._log.replay is None:  # a replayed call keeps the recorded call's cost
            call["cost_usd"] = call_cost(call["usage"], self._log.price)
        if self._log.budget is not None:
            self._log.budget.publish(self._log.spent_usd())
        self._last = result.usage
        self._total = RequestUsage(self._total.prompt_tokens + result.usage.prompt_tokens,
                                   self._total.completion_tokens + result.usage.completion_tokens)
        return result

    def _replayed(self, call: dict) -> CreateResult:
        replay = self._log.replay or {}
        answers = replay.get(call["fingerprint"])
        if not answers:
            raise ReplayMissing(f"no recorded answer for {self._agent}'s request {call['fingerprint'][:16]} "
                                f"(the recording answers {sum(len(a) for a in replay.values())} more request(s)); "
                                "a replay never calls an endpoint")
        answer = answers.pop(0)
        call["cost_usd"] = answer.get("cost_usd")
        usage = answer["usage"] or {"prompt": 0, "completion": 0}
        return CreateResult(finish_reason=answer["finish_reason"] or "stop", content=answer["content"], cached=True,
                            usage=RequestUsage(prompt_tokens=usage["prompt"], completion_tokens=usage["completion"]))

    async def _create_honouring_retry_after(self, messages: Sequence[Any], call: dict, kwargs: dict) -> CreateResult:
        """``inner.create``, retried after a 429 as the endpoint's Retry-After asks, while the symbol has time left."""

        def fits(exc: BaseException) -> bool:
            return _is_rate_limit(exc) and time.perf_counter() + retry_after_seconds(exc) < self._log.deadline

        def waited(state) -> float:
            return retry_after_seconds(state.outcome.exception())

        def note(state) -> None:
            exc = state.outcome.exception()
            call.setdefault("rate_limited", []).append(
                {"http_status": getattr(exc, "status_code", 429), "retry_after_seconds": retry_after_seconds(exc)})

        async for attempt in AsyncRetrying(retry=retry_if_exception(fits), wait=waited, before_sleep=note,
                                           stop=stop_after_attempt(self._rate_limit_retries + 1), reraise=True):
            with attempt:
                return await self._inner.create(messages, **kwargs)
        raise AssertionError("unreachable: AsyncRetrying either returns or re-raises")  # pragma: no cover

    async def create_stream(self, messages: Sequence[Any], **kwargs: Any) -> AsyncGenerator[str | CreateResult, None]:
        result = await self.create(messages, **kwargs)
        yield result

    async def close(self) -> None:
        return None  # the shared inner client is closed once by ClientSet.close

    def actual_usage(self) -> RequestUsage:
        return self._last

    def total_usage(self) -> RequestUsage:
        return self._total

    def count_tokens(self, messages: Sequence[Any], **kwargs: Any) -> int:
        return self._inner.count_tokens(messages, **kwargs)

    def remaining_tokens(self, messages: Sequence[Any], **kwargs: Any) -> int:
        return self._inner.remaining_tokens(messages, **kwargs)

    @property
    def capabilities(self) -> Any:
        return self._inner.model_info

    @property
    def model_info(self) -> ModelInfo:
        return self._inner.model_info


def _llm_message(message: Any) -> dict:
    content = message.content
    if not isinstance(content, str):
        content = json.dumps([c.model_dump() if hasattr(c, "model_dump") else str(c) for c in content], sort_keys=True)
    return {"type": message.type, "source": getattr(message, "source", None), "content": content}
