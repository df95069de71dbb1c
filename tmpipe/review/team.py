"""The AgentChat team from the review config: agents, prompts, speaker order and termination."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from autogen_agentchat.base import ChatAgent, Team, TerminationCondition
from autogen_agentchat.conditions import (
    MaxMessageTermination,
    SourceMatchTermination,
    TimeoutTermination,
    TokenUsageTermination,
)
from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage, StopMessage, StructuredMessage

from tmpipe.errors import ReviewError
from tmpipe.review.clients import ClientSet
from tmpipe.review.rules_client import EVIDENCE_MARKER
from tmpipe.review.signal import SignalDraft

if TYPE_CHECKING:
    from autogen_agentchat.teams import BaseGroupChat

    from tmpipe.config.sections import ReviewConfig

_PLACEHOLDER = re.compile(r"\{(symbol|name|role|horizon|max_drawdown|min_sharpe|min_confidence)\}")
ROLE_DESCRIPTIONS = {
    "analyst": "Summarises the evidence pack with its numbers.",
    "risk_manager": "Checks the evidence against the risk thresholds; approves, downgrades or overrides.",
    "signal_writer": "Writes the final trading signal as one JSON object, after the analyst and risk manager.",
}
# Appended by the code, never configurable: outside text and templates cannot change the output schema.
SIGNAL_WRITER_CONTRACT = (
    "\n\nOUTPUT CONTRACT: answer with exactly one JSON object and nothing else, with exactly these keys: "
    '"action" ("BUY", "SELL" or "HOLD"), "confidence" (number 0..1), "target_position" (number -1..1, 0 for HOLD), '
    '"stop_loss" and "take_profit" (prices; null for HOLD; for BUY stop_loss < reference price < take_profit, '
    'for SELL the reverse), "rationale" (one or two sentences), "risks" (list of short strings), '
    '"evidence" (object of the key numbers you relied on, e.g. {"test_sharpe": 1.1}). No other keys.'
)
TERMINATIONS = ("signal_written", "max_messages", "token_budget", "timeout")


@dataclass(frozen=True)
class AgentPlan:
    name: str
    role: str
    system_prompt: str


@dataclass(frozen=True)
class TeamPlan:
    """The rendered team: what the trace records and what each attempt is built from."""

    type: str
    agents: tuple[AgentPlan, ...]
    writer: str
    risk_managers: tuple[str, ...]

    def as_record(self, review_config: ReviewConfig) -> dict:
        return {
            "type": self.type,
            "agents": [{"name": a.name, "role": a.role, "system_prompt": a.system_prompt} for a in self.agents],
            "termination": {"signal_writer": self.writer, "max_messages": review_config.max_messages,
                            "token_budget": review_config.token_budget,
                            "timeout_seconds": review_config.timeout_seconds},
            "max_retries": review_config.max_retries,
        }


def render_prompt(template: str, values: dict) -> str:
    """Fill the known ``{placeholders}`` only, so JSON braces in a template stay as written."""
    return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), template)


def plan_team(review_config: ReviewConfig, symbol: str) -> TeamPlan:
    agents = review_config.agents
    names = [agent.name for agent in agents]
    writers = [agent.name for agent in agents if agent.role == "signal_writer"]
    if len(set(names)) != len(names):
        raise ReviewError(f"review.agents: agent names must be unique, got {names}")
    if len(writers) != 1:
        raise ReviewError(f"review.agents: exactly one agent must have role signal_writer, got {len(writers)}")
    prompts = review_config.prompts
    by_role = {"analyst": prompts.analyst, "risk_manager": prompts.risk_manager, "signal_writer": prompts.signal_writer}
    rendered = []
    for agent in agents:
        values = {"symbol": symbol, "name": agent.name, "role": agent.role, "horizon": review_config.horizon,
                  **review_config.thresholds.model_dump()}
        template = agent.system_prompt or by_role[agent.role]
        prompt = render_prompt(template, values)
        if agent.role == "signal_writer":
            prompt += SIGNAL_WRITER_CONTRACT
        rendered.append(AgentPlan(agent.name, agent.role, prompt))
    risk = tuple(agent.name for agent in agents if agent.role == "risk_manager")
    return TeamPlan(review_config.team, tuple(rendered), writers[0], risk)


def task_message(review_config: ReviewConfig, symbol: str, evidence: dict, feedback: list[str] | None = None) -> str:
    """The opening message: instructions, then the evidence as JSON data (backticks escaped)."""
    text = render_prompt(review_config.prompts.task, {"symbol": symbol, "horizon": review_config.horizon,
                                                       "name": "", "role": "", **review_config.thresholds.model_dump()})
    data = json.dumps(evidence, sort_keys=True, indent=1, ensure_ascii=True).replace("`", "\\u0060")
    text += f"\n\n{EVIDENCE_MARKER}\n{data}\n"
    if feedback:
        text += ("\nThe previous signal was rejected by the guardrails; write a corrected one. Problems:\n"
                 + "\n".join(f"- {problem}" for problem in feedback) + "\n")
    return text


class RecordedTermination(TerminationCondition):
    """Remembers, under ``name``, that ``inner`` fired (AgentChat resets conditions after a run)."""

    def __init__(self, name: str, inner: TerminationCondition, fired: list[str]):
        self._name, self._inner, self._fired = name, inner, fired

    @property
    def terminated(self) -> bool:
        return self._inner.terminated

    async def __call__(self, messages: Sequence[BaseAgentEvent | BaseChatMessage]) -> StopMessage | None:
        stop = await self._inner(messages)
        if stop is not None:
            self._fired.append(self._name)
        return stop

    async def reset(self) -> None:
        await self._inner.reset()


@dataclass
class BuiltTeam:
    team: BaseGroupChat
    fired: list[str] = field(default_factory=list)


def build_team(plan: TeamPlan, review_config: ReviewConfig, clients: ClientSet, *, token_budget: int,
               timeout_seconds: float) -> BuiltTeam:
    """A fresh team for one attempt; budget and time are what is left of the symbol's allowance."""
    from autogen_agentchat.agents import AssistantAgent
    from autogen_agentchat.teams import RoundRobinGroupChat, SelectorGroupChat

    fired: list[str] = []
    termination = (RecordedTermination("signal_written", SourceMatchTermination([plan.writer]), fired)
                   | RecordedTermination("max_messages", MaxMessageTermination(review_config.max_messages), fired)
                   | RecordedTermination("token_budget", TokenUsageTermination(max_total_token=max(1, token_budget)), fired)
                   | RecordedTermination("timeout", TimeoutTermination(timeout_seconds), fired))
    agents: list[ChatAgent | Team] = [AssistantAgent(a.name, clients.for_agent(a.name, a.role), system_message=a.system_prompt,
                             description=ROLE_DESCRIPTIONS[a.role],
                             output_content_type=SignalDraft if clients.structured and a.name == plan.writer else None)
              for a in plan.agents]
    # A structured writer answers with a StructuredMessage, which the team must know to carry.
    custom: list[type[BaseAgentEvent] | type[BaseChatMessage]] | None = (
        [StructuredMessage[SignalDraft]] if clients.structured else None)
    if plan.type == "round_robin":
        team: BaseGroupChat = RoundRobinGroupChat(agents, termination_condition=termination, custom_message_types=custom)
    else:
        order = [a.name for a in plan.agents]
        rules = clients.reviewer["provider"] == "rules"

        def next_in_order(messages: Sequence[BaseAgentEvent | BaseChatMessage]) -> str | None:
            # The rules model has no language to pick speakers with: it follows the configured order.
            last = next((m.source for m in reversed(messages) if m.source in order), None)
            return order[0] if last is None else order[(order.index(last) + 1) % len(order)]

        team = SelectorGroupChat(agents, model_client=clients.for_agent("selector", "selector"),
                                 termination_condition=termination, selector_func=next_in_order if rules else None,
                                 custom_message_types=custom)
    return BuiltTeam(team, fired)
