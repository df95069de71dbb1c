"""The evidence pack: the one compact JSON document the review agents see about the market."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from tmpipe.engine.market import MARKET_KEYS, market_summary
from tmpipe.engine.metrics import METRIC_KEYS
from tmpipe.errors import ReviewError
from tmpipe.finite import finite_or_none
from tmpipe.review.schema_ids import EVIDENCE, schema_problems

ACTION_TO_SIGNAL = {"long": "BUY", "short": "SELL", "flat": "HOLD"}
LINEAGE_KEYS = ("dag_id", "dag_run_id", "mlflow_run_id", "mlflow_experiment_id", "model_uri", "data_sha256")
RUN_KEYS = ("model_version", "mlflow_run_url")  # in the evidence's lineage too; the signal has them top level
REPORT_KEYS = ("total_return", "total_return_gross", "excess_return", "information_ratio", "sharpe", "sortino",
               "calmar", "max_drawdown", "max_drawdown_bars", "turnover", "cost_drag", "exposure", "win_rate",
               "profit_factor", "trades", "bars")
NOTES_MAX_CHARS = 4000


def build_evidence(engine_result: dict, inference_result: dict, *, symbol: str, lineage: dict,
                   notes: str | None = None, track_record: dict | None = None) -> dict:
    """Evidence pack (``schemas/evidence.schema.json``) from the engine and inference contracts.

    ``notes`` is outside text (for example a WebUI link-config note); it is stored as quoted,
    explicitly untrusted data so that no agent prompt ever presents it as an instruction.
    ``track_record`` is how the symbol's earlier signals fared (tmpipe.signals), when any were graded.
    """
    action = inference_result.get("action")
    if action not in ACTION_TO_SIGNAL:
        raise ReviewError(f"{symbol}: inference action {action!r} is not one of short|flat|long", symbol=symbol)
    probabilities = inference_result.get("probabilities")
    if probabilities is not None:
        probabilities = {k: _rounded(probabilities.get(k)) for k in ("short", "flat", "long")}
        if any(v is None for v in probabilities.values()):
            probabilities = None
    metrics = engine_result.get("metrics") or {}
    market = inference_result.get("market") or {}
    window = inference_result.get("window")
    fingerprint = engine_result.get("data_fingerprint") or {}
    evidence: dict[str, Any] = {
        "schema_version": 1,
        "symbol": symbol,
        "as_of": _text(inference_result.get("as_of")),
        "inference": {
            "action": action,
            "implied_signal": ACTION_TO_SIGNAL[action],
            "target_position": _rounded(inference_result.get("target_position")),
            "probabilities": probabilities,
            "confidence": probabilities[action] if probabilities else None,
            "reference_price": _rounded(inference_result.get("reference_price", market.get("last_close"))),
            "source": "backtest_last_action" if inference_result.get("kind") == "backtest_last_action" else "inference",
        },
        "backtest": {
            "backend": _text(engine_result.get("backend")),
            "agent": _text(engine_result.get("agent")),
            "chosen_epoch": engine_result.get("chosen_epoch"),
            "test": _metrics(metrics.get("test")),
            "buy_and_hold": _metrics(metrics.get("buy_and_hold")),
            "excess_return": _rounded(engine_result.get("excess_return")),
            "evaluation": evaluation_summary(engine_result),
        },
        "market": {
            **{key: _rounded(market.get(key)) for key in MARKET_KEYS},
            "window": None if window is None else {
                "first_timestamp": _text(window.get("first_timestamp")),
                "last_timestamp": _text(window.get("last_timestamp")),
                "bars": window.get("bars"),
            },
        },
        "lineage": {key: _text((lineage or {}).get(key)) for key in (*LINEAGE_KEYS, *RUN_KEYS)},
        "data": {
            "sha256": _text(fingerprint.get("sha256")),
            "first_timestamp": _text(fingerprint.get("first_timestamp")),
            "last_timestamp": _text(fingerprint.get("last_timestamp")),
            "rows": fingerprint.get("rows"),
        },
        "notes": None if notes is None else {"trust": "untrusted_outside_text", "text": str(notes)[:NOTES_MAX_CHARS]},
    }
    if track_record is not None:
        evidence["track_record"] = track_record
    if evidence["lineage"]["data_sha256"] is None:
        evidence["lineage"]["data_sha256"] = evidence["data"]["sha256"]
    problems = schema_problems(evidence, EVIDENCE)
    if problems:
        raise ReviewError(f"{symbol}: evidence pack is invalid: " + "; ".join(problems), symbol=symbol)
    return evidence


def evaluation_summary(engine_result: dict) -> dict | None:
    """The walk-forward report, baselines and skill test in a few figures and one sentence; None
    for a result without them (the upstream backend)."""
    skill, report, baselines = (engine_result.get(key) for key in ("skill", "report", "baselines"))
    if not (skill and report and baselines):
        return None
    pooled = report["pooled"]
    differences = skill["sharpe_difference"]["baselines"]
    versus = {name: {"sharpe": _rounded(values["pooled"]["sharpe"]) or 0.0,
                     "total_return": _rounded(values["pooled"]["total_return"]),
                     "sharpe_difference": _rounded(differences[name]["estimate"]),
                     "ci_low": _rounded(differences[name]["ci_low"]), "ci_high": _rounded(differences[name]["ci_high"])}
              for name, values in baselines.items()}
    summary = {
        "skill_p_value": _rounded(skill["p_value"]),
        "skill_method": f"{skill['method']} ({skill['parameters']['shifts']} shifts of at least "
                        f"{skill['parameters']['min_shift']} bars)",
        "deflated_sharpe": _rounded(skill["deflated_sharpe"]["value"]),
        "trials": skill["deflated_sharpe"]["trials"],
        "folds": len(report["folds"]),
        "report": {key: _rounded(pooled.get(key)) for key in REPORT_KEYS},
        "baselines": versus,
        "deployed": _text((engine_result.get("walk_forward") or {}).get("deployed", {}).get("description")),
    }
    summary["report"]["trades"] = pooled.get("trades")
    summary["report"]["max_drawdown_bars"] = pooled.get("max_drawdown_bars")
    summary["report"]["bars"] = pooled.get("bars")
    summary["verdict"] = skill_verdict(summary)
    return summary


def skill_verdict(summary: dict, level: float = 0.05) -> str:
    """One sentence a reader can check: is there out-of-sample skill, and does it beat the baselines?"""
    sharpe = summary["report"]["sharpe"] or 0.0
    p_value = summary["skill_p_value"]
    against = ", ".join(f"{name} {values['sharpe']:.2f} (difference {values['sharpe_difference']:+.2f}, "
                        f"{values['ci_low']:+.2f}..{values['ci_high']:+.2f})"
                        for name, values in summary["baselines"].items())
    figures = (f"out-of-sample Sharpe after costs {sharpe:.2f} over {summary['folds']} walk-forward fold(s) and "
               f"{summary['report']['bars']} bars, against {against}; timing p-value {p_value:.3f} "
               f"({summary['skill_method']}), deflated Sharpe ratio {summary['deflated_sharpe']:.2f} "
               f"over {summary['trials']} trial(s)")
    if p_value is not None and p_value < level:
        return f"Timing skill is significant at {level:g}: {figures}."
    return f"No demonstrated skill (timing p-value not below {level:g}): {figures}."


def inference_from_backtest(engine_result: dict) -> dict:
    """An inference-shaped dict from the backtest's ``last_action`` and its equity curve.

    Used when only a train_backtest result is at hand (CLI ``--engine-result`` without
    ``--inference``): there are no probabilities, so the confidence is unknown.
    """
    last = engine_result.get("last_action") or {}
    closes, dates = _read_closes(engine_result.get("equity_curve_path"))
    bars_per_year = engine_result["metrics"]["test"]["bars_per_year"]  # required by the engine result schema
    return {
        "kind": "backtest_last_action",
        "symbol": engine_result.get("symbol"),
        "as_of": last.get("date") or (dates[-1] if dates else None),
        "action": last.get("action"),
        "target_position": last.get("target_position"),
        "probabilities": None,
        "reference_price": closes[-1] if closes else None,
        "window": {"first_timestamp": dates[0], "last_timestamp": dates[-1], "bars": len(dates)} if dates else None,
        "market": market_stats(closes, bars_per_year),
    }


def market_stats(closes: list[float], bars_per_year: float) -> dict:
    """The engine's market statistics (tmpipe.engine.market), each rounded like the rest of the pack."""
    return {key: _rounded(value) for key, value in market_summary(closes, bars_per_year).items()}


def _read_closes(path: str | None) -> tuple[list[float], list[str]]:
    if not path or not Path(path).is_file():
        return [], []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("close")]
    return [float(row["close"]) for row in rows], [row["date"] for row in rows]


def _metrics(values: dict | None) -> dict:
    values = values or {}
    out = {key: _rounded(values.get(key)) for key in METRIC_KEYS}
    out["bars"] = int(values["bars"]) if values.get("bars") is not None else None
    return out


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _rounded(value: object) -> float | None:
    return finite_or_none(value, digits=6)
