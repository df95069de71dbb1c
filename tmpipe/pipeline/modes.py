"""Which stages of a symbol's chain each run mode runs: the one table everything else reads.

resolve_symbols has the scheduler skip the others (no task starts for them; a stage
operator started anyway skips too), the tracker logs the config in the first stage and closes
the MLflow run in the last, the summary calls a symbol done when its last stage returned, and
the CLI and the DAG's params offer these modes. ``schemas/mode.schema.json`` lists the same names for
editors and ``dag_run.conf`` validation (a test keeps the two equal).
"""

from __future__ import annotations

from tmpipe.errors import ModeError

# A symbol's chain, in order.
STAGES = ("train_backtest", "inference", "review", "persist")

STAGES_BY_MODE: dict[str, tuple[str, ...]] = {
    "both": STAGES,
    "train_backtest": ("train_backtest",),
    "inference": ("inference", "review", "persist"),
}

MODES = tuple(STAGES_BY_MODE)


def stages_of(mode: str) -> tuple[str, ...]:
    """The stages ``mode`` runs, in order; an unknown mode names the valid ones."""
    try:
        return STAGES_BY_MODE[mode]
    except KeyError:
        raise ModeError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}") from None


def runs(mode: str, stage: str) -> bool:
    return stage in stages_of(mode)


def first_stage(mode: str) -> str:
    return stages_of(mode)[0]


def last_stage(mode: str) -> str:
    return stages_of(mode)[-1]


def trains(mode: str) -> bool:
    """True when the run trains its own model; otherwise inference loads the promoted one."""
    return runs(mode, "train_backtest")
