"""The offline rules model: a deterministic ChatCompletionClient that speaks the review policy.

It is not a language model. Each agent gets its own instance, told its role; it reads the
evidence pack from the task message, applies :mod:`tmpipe.review.policy` and answers in the
role's own words with the numbers it used. Token counts are whitespace-separated words so
that token budgets behave the same way as with an endpoint, and deterministically.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, AsyncGenerator, Mapping, Sequence

from autogen_core.models import ChatCompletionClient, CreateResult, ModelInfo, RequestUsage

from tmpipe.review.policy import PolicyDecision, evaluate_policy

if TYPE_CHECKING:
    from tmpipe.config.sections import ReviewConfig

RULES_MODEL_NAME = "rules-model:tmpipe-review-policy-v1"
RULES_MODEL_LABEL = "rules model tmpipe-review-policy-v1 (deterministic review policy, not an LLM)"
EVIDENCE_MARKER = "EVIDENCE PACK (JSON data):"


def extract_evidence(text: str) -> dict | None:
    """The evidence object that follows EVIDENCE_MARKER in a task message, if any."""
    start = text.find(EVIDENCE_MARKER)
    if start < 0:
        return None
    brace = text.find("{", start)
    try:
        value, _ = json.JSONDecoder().raw_decode(text, brace)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def count_words(text: str) -> int:
    return len(text.split())


class RulesChatCompletionClient(ChatCompletionClient):
    """Deterministic policy answers for one agent role (analyst, risk_manager or signal_writer)."""

    def __init__(self, role: str, review_config: ReviewConfig):
        self._role = role
        self._config = review_config
        self._last = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._total = RequestUsage(prompt_tokens=0, completion_tokens=0)

    async def create(self, messages: Sequence[Any], *, tools: Sequence[Any] = [], tool_choice: Any = "auto",
                     json_output: Any = None, extra_create_args: Mapping[str, Any] = {},
                     cancellation_token: Any = None) -> CreateResult:
        evidence = next((found for found in (extract_evidence(_text_of(m)) for m in messages) if found), None)
        if evidence is None:
            content = "The rules model found no evidence pack in the conversation and cannot review."
        else:
            decision = evaluate_policy(evidence, self._config)
            content = {"analyst": analyst_text, "risk_manager": risk_manager_text,
                       "signal_writer": signal_writer_text}[self._role](evidence, decision, self._config)
        self._last = RequestUsage(prompt_tokens=self.count_tokens(messages), completion_tokens=count_words(content))
        self._total = RequestUsage(prompt_tokens=self._total.prompt_tokens + self._last.prompt_tokens,
                                   completion_tokens=self._total.completion_tokens + self._last.completion_tokens)
        return CreateResult(finish_reason="stop", content=content, usage=self._last, cached=False)

    async def create_stream(self, messages: Sequence[Any], **kwargs: Any) -> AsyncGenerator[str | CreateResult, None]:
        result = await self.create(messages, **kwargs)
        if isinstance(result.content, str):  # always: the rules model writes text, never function calls
            yield result.content
        yield result

    async def close(self) -> None:
        return None

    def actual_usage(self) -> RequestUsage:
        return self._last

    def total_usage(self) -> RequestUsage:
        return self._total

    def count_tokens(self, messages: Sequence[Any], *, tools: Sequence[Any] = []) -> int:
        return sum(count_words(_text_of(message)) for message in messages)

    def remaining_tokens(self, messages: Sequence[Any], *, tools: Sequence[Any] = []) -> int:
        return max(0, self._config.token_budget - self.count_tokens(messages))

    @property
    def capabilities(self) -> Any:  # deprecated in autogen_core, still abstract
        return self.model_info

    @property
    def model_info(self) -> ModelInfo:
        return ModelInfo(vision=False, function_calling=False, json_output=False, family="rules-model",
                         structured_output=False, multiple_system_messages=True)


def analyst_text(evidence: dict, decision: PolicyDecision, config: ReviewConfig) -> str:
    inference, backtest, market = evidence["inference"], evidence["backtest"], evidence["market"]
    test, hold = backtest["test"], backtest["buy_and_hold"]
    probabilities = inference["probabilities"]
    odds = ("no probabilities (action taken from the backtest's last bar)" if probabilities is None else
            "probabilities short {short:.4f} / flat {flat:.4f} / long {long:.4f}".format(**probabilities))
    return (
        f"Analyst (rules model) for {evidence['symbol']} as of {evidence['as_of']}: the agent infers "
        f"{inference['action']} (implies {decision.implied_signal}), {odds}. "
        f"Test period: total return {_pct(test['total_return'])}, Sharpe {_num(test['sharpe'])}, "
        f"max drawdown {_pct(test['max_drawdown'])}, win rate {_pct(test['win_rate'])}; "
        f"buy-and-hold total return {_pct(hold['total_return'])}, excess return {_pct(backtest['excess_return'])}. "
        f"Market: last close {_num(market['last_close'])}, 1-day return {_pct(market['return_1d'])}, "
        f"20-day return {_pct(market['return_20d'])}, realised volatility (20d, annualised) "
        f"{_pct(market['realised_volatility_20d'])}, trend slope (20d) {_num(market['trend_slope_20d'], 6)}."
    )


def risk_manager_text(evidence: dict, decision: PolicyDecision, config: ReviewConfig) -> str:
    lines = [f"Risk manager (rules model) for {evidence['symbol']}, checking {decision.implied_signal}:"]
    lines += [f"- {check.describe()}" for check in decision.checks]
    if decision.implied_signal == "HOLD":
        lines.append("APPROVE: the agent is flat; HOLD needs no risk waiver.")
    elif decision.status == "downgraded":
        lines.append(f"DOWNGRADE: {decision.implied_signal} -> HOLD because {decision.downgrade_reason()}.")
    else:
        lines.append(f"APPROVE: {decision.implied_signal} passes every threshold.")
    return "\n".join(lines)


def signal_writer_text(evidence: dict, decision: PolicyDecision, config: ReviewConfig) -> str:
    test = evidence["backtest"]["test"]
    if decision.status == "downgraded":
        rationale = f"Inferred {decision.implied_signal} downgraded to HOLD by the review policy: {decision.downgrade_reason()}."
    elif decision.action == "HOLD":
        rationale = (f"HOLD as inferred by the agent (flat); no position to approve. Policy checks for reference: "
                     f"{'; '.join(check.describe() for check in decision.checks)}.")
    else:
        rationale = (f"{decision.action} as inferred by the agent; all policy checks pass "
                     f"({'; '.join(check.describe() for check in decision.checks)}).")
    risks = [f"test max drawdown {_pct(test['max_drawdown'])}",
             f"realised volatility (20d, annualised) {_pct(evidence['market']['realised_volatility_20d'])}"]
    if (evidence["backtest"]["excess_return"] or 0) < 0:
        risks.append(f"strategy lagged buy-and-hold by {_pct(-evidence['backtest']['excess_return'])} in the test period")
    if evidence["inference"]["probabilities"] is None:
        risks.append("no inference probabilities: confidence unknown")
    draft = {
        "action": decision.action,
        "confidence": decision.confidence,
        "target_position": decision.target_position,
        "stop_loss": decision.stop_loss,
        "take_profit": decision.take_profit,
        "rationale": rationale,
        "risks": risks,
        "evidence": {
            "inference_action": evidence["inference"]["action"],
            "inference_confidence": evidence["inference"]["confidence"],
            "test_sharpe": test["sharpe"],
            "test_max_drawdown": test["max_drawdown"],
            "test_total_return": test["total_return"],
            "excess_return": evidence["backtest"]["excess_return"],
            "realised_volatility_20d": evidence["market"]["realised_volatility_20d"],
            "reference_price": decision.reference_price,
        },
    }
    return json.dumps(draft, sort_keys=True)


def _text_of(message: Any) -> str:
    content = getattr(message, "content", message)
    return content if isinstance(content, str) else json.dumps(content, default=str, sort_keys=True)


def _pct(value: float | None) -> str:
    return "unknown" if value is None else f"{value * 100:.2f}%"


def _num(value: float | None, digits: int = 4) -> str:
    return "unknown" if value is None else f"{value:.{digits}f}"
