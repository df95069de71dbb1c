"""Typed view of a validated pipeline spec; knows nothing of Airflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tmpipe.spec.yaml_positions import PositionedDocument


@dataclass(frozen=True)
class DagSettings:
    dag_id: str
    description: str
    schedule: str | None
    start_date: str
    catchup: bool
    max_active_runs: int
    max_active_symbols: int
    owner: str
    retries: int
    retry_delay_seconds: int
    execution_timeout_minutes: int
    tags: tuple[str, ...]
    keep_scratch_runs: int  # runs whose finished per-symbol scratch stays under TMPIPE_HOME/work


@dataclass(frozen=True)
class Limits:
    max_epochs: int
    max_lookback: int
    max_symbols: int


@dataclass(frozen=True)
class SymbolSelectionPolicy:
    on_no_symbols: str  # fail | succeed
    on_too_many_symbols: str  # fail | truncate


@dataclass(frozen=True)
class Spec:
    """A loaded spec. ``defaults`` and ``symbols`` stay partial: the resolver layers them."""

    path: str
    sha256: str
    document: PositionedDocument = field(repr=False)
    dag: DagSettings
    default_mode: str
    limits: Limits
    symbol_selection: SymbolSelectionPolicy
    demo_symbols: tuple[str, ...]
    defaults: dict[str, Any]
    symbols: dict[str, dict[str, Any]]
    secret_env_pattern: str
    """security.secret_env_pattern: every secret env var name must fully match it."""
    text: str = field(default="", repr=False)
    """The spec file as written, shown in the DAG's docs so each DAG version records its spec."""
