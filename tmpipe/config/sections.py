"""Typed stage-config sections, built from resolver output that has passed the JSON Schemas.

The schemas under ``schemas/sections/`` stay the contract (editors, CI, error positions); these
frozen models only give the code attributes instead of string keys, so a misspelt key is a
type-check error, not a ``KeyError`` mid-run. They carry no defaults of their own: values are
filled from the schemas (``tmpipe.spec.schemas.fill_defaults``) before a model is built, and
``tests/config/test_sections.py`` keeps the fields and the schema keys the same.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping, Self, TypeAlias

from pydantic import BaseModel, ConfigDict

from tmpipe.spec import schemas

# A JSON Schema "number": an int stays an int, so ``model_dump(mode="json")`` gives back the input.
Number: TypeAlias = int | float


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_id: ClassVar[str]  # the model's schema; a nested model's is a JSON pointer into its section's

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None) -> Self:
        """The typed section of a (partial) dict that passed its schema; missing keys take schema defaults."""
        return cls.model_validate(schemas.fill_defaults(cls.schema_id, dict(values or {})))


class DataConfig(_Section):
    schema_id = "urn:tmpipe:section:data"

    source: Literal["demo", "csv", "parquet", "yfinance"]
    path: str | None
    demo_series: Literal["sp500", "nasdaq", "synthetic", "planted", "random_walk"]
    synthetic_rows: int
    synthetic_seed: int
    start: str | None
    end: str | None
    lookback: int
    valid_ratio: Number
    test_ratio: Number
    bars_per_year: Number | None


class UpstreamConfig(_Section):
    schema_id = "urn:tmpipe:section:trademaster#/properties/upstream"

    home: str | None
    python: str | None


class EvaluationConfig(_Section):
    schema_id = "urn:tmpipe:section:trademaster#/properties/evaluation"

    folds: int
    max_selection_epsilon: Number
    ma_fast: int
    ma_slow: int
    ma_allow_short: bool
    min_shift: int
    max_shifts: int
    bootstrap_block: int
    bootstrap_samples: int
    confidence: Number


class TrademasterConfig(_Section):
    schema_id = "urn:tmpipe:section:trademaster"

    backend: Literal["builtin", "upstream"]
    agent: Literal["deepscalper"]
    epochs: int
    seed: int
    torch_threads: int | None
    hidden_size: int
    learning_rate: Number
    gamma: Number
    batch_size: int
    replay_size: int
    parallel_envs: int
    target_update_tau: Number
    epsilon_start: Number
    epsilon_end: Number
    early_stopping_patience: int
    reward_scale: Number
    switch_penalty: Number
    hindsight_weight: Number
    hindsight_horizon: int
    volatility_aux_weight: Number
    volatility_horizon: int
    transaction_cost_pct: Number
    slippage_pct: Number
    max_position: Number
    allow_short: bool
    initial_cash: Number
    evaluation: EvaluationConfig
    upstream: UpstreamConfig


class AgentConfig(_Section):
    schema_id = "urn:tmpipe:section:review#/properties/agents/items"

    name: str
    role: Literal["analyst", "risk_manager", "signal_writer"]
    system_prompt: str | None


class PromptsConfig(_Section):
    schema_id = "urn:tmpipe:section:review#/properties/prompts"

    analyst: str
    risk_manager: str
    signal_writer: str
    task: str


class ThresholdsConfig(_Section):
    schema_id = "urn:tmpipe:section:review#/properties/thresholds"

    max_drawdown: Number
    min_sharpe: Number
    min_confidence: Number
    max_skill_p_value: Number


class ModelPrice(_Section):
    schema_id = "urn:tmpipe:section:review#/properties/model_client/properties/prices/additionalProperties"

    prompt_per_1m: Number
    completion_per_1m: Number


class ModelClientConfig(_Section):
    schema_id = "urn:tmpipe:section:review#/properties/model_client"

    provider: Literal["rules", "openai", "replay"]
    base_url: str | None
    model: str
    temperature: Number
    timeout_seconds: Number
    api_key_env: str | None
    airflow_conn_id: str | None
    structured_output: Literal["auto", "json_schema", "text"]
    rate_limit_retries: int
    prices: dict[str, ModelPrice]
    replay_dag_run_id: str | None
    replay_file: str | None


class BudgetConfig(_Section):
    schema_id = "urn:tmpipe:section:review#/properties/budget"

    per_symbol_usd: Number | None
    per_dag_run_usd: Number | None


class TrackRecordConfig(_Section):
    schema_id = "urn:tmpipe:section:review#/properties/track_record"

    rolling_window: int
    min_graded: int
    min_hit_rate: Number | None


class ReviewConfig(_Section):
    schema_id = "urn:tmpipe:section:review"

    team: Literal["round_robin", "selector"]
    agents: tuple[AgentConfig, ...]
    prompts: PromptsConfig
    max_messages: int
    token_budget: int
    timeout_seconds: Number
    max_retries: int
    mlflow_tracing: bool
    horizon: str
    stop_loss_sigmas: Number
    take_profit_sigmas: Number
    thresholds: ThresholdsConfig
    budget: BudgetConfig
    track_record: TrackRecordConfig
    model_client: ModelClientConfig


class PromotionConfig(_Section):
    schema_id = "urn:tmpipe:section:mlflow#/properties/promotion"

    alias: str
    require_beat_buy_and_hold: bool
    max_drawdown: Number
    require_skill: bool
    skill_level: Number
    beat_baselines: tuple[Literal["buy_and_hold", "flat", "ma_crossover"], ...]


class MlflowConfig(_Section):
    schema_id = "urn:tmpipe:section:mlflow"

    tracking_uri: str | None
    experiment: str
    registered_model_prefix: str
    promotion: PromotionConfig


class WebuiConfig(_Section):
    schema_id = "urn:tmpipe:section:webui"

    backend: Literal["embedded", "http"]
    base_url: str | None
    conn_id: str | None
    token_env: str | None
    timeout_seconds: Number
    retries: int


class EngineConfig(BaseModel):
    """The two sections the engine reads: what ``train_backtest`` and ``infer`` take (docs/contracts.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    data: DataConfig
    trademaster: TrademasterConfig

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None) -> Self:
        """The engine config of a (partial) ``{"data": ..., "trademaster": ...}`` dict; missing keys take schema defaults."""
        values = values or {}
        return cls(data=DataConfig.from_values(values.get("data")),
                   trademaster=TrademasterConfig.from_values(values.get("trademaster")))


class StageConfig(_Section):
    """All sections of one symbol's config."""

    schema_id = schemas.STAGE_CONFIG
    data: DataConfig
    trademaster: TrademasterConfig
    review: ReviewConfig
    mlflow: MlflowConfig
    webui: WebuiConfig

    @property
    def engine(self) -> EngineConfig:
        return EngineConfig(data=self.data, trademaster=self.trademaster)
