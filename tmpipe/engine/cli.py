"""``tmpipe engine``: train/backtest and infer with the built-in engine, without Airflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import click

from tmpipe.config.sections import DataConfig
from tmpipe.engine.defaults import default_config
from tmpipe.errors import TmpipeError
from tmpipe.spec.schemas import schema

DEMO_PREFIX = "demo:"


def data_section(data: str, base: Mapping[str, Any] | None = None) -> DataConfig:
    """--data value -> data section: 'demo:sp500|nasdaq|synthetic|planted|random_walk', a file, or a split directory.

    ``base`` is the section to start from as a dict (a model bundle's saved ``data_config``); schema defaults fill the rest.
    """
    section = DataConfig.from_values(base).model_dump()
    if data.startswith(DEMO_PREFIX):
        series = data[len(DEMO_PREFIX):]
        choices = schema("urn:tmpipe:section:data")["properties"]["demo_series"]["enum"]
        if series not in choices:
            raise click.ClickException(
                f"--data: unknown demo series {series!r} (choose {', '.join(DEMO_PREFIX + c for c in choices)})"
            )
        section.update(source="demo", demo_series=series, path=None)
    else:
        suffix = Path(data).suffix.lower()
        section.update(source="parquet" if suffix in (".parquet", ".pq") else "csv", path=data)
    return DataConfig.model_validate(section)


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.4f}" if isinstance(value, float) else str(value)


def _print_train_result(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if "report" in result:  # builtin: walk-forward report against every baseline
        columns = {"agent": result["report"]["pooled"],
                   **{name: report["pooled"] for name, report in result["baselines"].items()}}
        title = f"{result['symbol']}: {len(result['report']['folds'])} walk-forward test windows pooled, after costs"
    else:
        columns = {"agent": result["metrics"]["test"], "buy_and_hold": result["metrics"]["buy_and_hold"]}
        title = f"{result['symbol']}: test split, agent vs buy-and-hold"
    table = Table(title=title)
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    for key in columns["agent"]:
        table.add_row(key, *(_fmt(values[key]) for values in columns.values()))
    console.print(table)
    if "skill" in result:
        skill = result["skill"]
        console.print(f"timing skill p-value {skill['p_value']:.4f} ({skill['method']}, {skill['parameters']['shifts']} shifts); "
                      f"deflated Sharpe ratio {skill['deflated_sharpe']['value']:.3f} over {skill['deflated_sharpe']['trials']} trial(s)")
        console.print(f"deployed: {result['walk_forward']['deployed']['description']}")
    last = result["last_action"]
    console.print(f"excess return {result['excess_return']:+.4f}; chosen epoch {result['chosen_epoch']}: {result['chosen_reason']}")
    console.print(f"last action {last['action']} ({last['target_position']:+g}) on {last['date']}")
    console.print(f"equity curve {result['equity_curve_path']}\nmodel {result['model_dir']}")


def _print_epoch(record: dict, err: bool) -> None:
    sharpe = _fmt(record["valid_sharpe"])
    loss = _fmt(record["loss"])
    fold = f"fold {record['fold']}/{record['folds']} " if "fold" in record else ""
    click.echo(
        f"{fold}epoch {record['epoch']}: loss {loss} train_return {record['train_return']:+.4f} "
        f"valid_return {record['valid_return']:+.4f} valid_sharpe {sharpe} "
        f"epsilon {record['epsilon']:.3f} {record['seconds']:.2f}s",
        err=err,
    )


engine = click.Group("engine", help="Train, backtest and infer with the built-in TradeMaster engine.")


@engine.command("train-backtest")
@click.option("--data", "data", required=True, help="CSV/Parquet file, TradeMaster split directory, or demo:sp500|nasdaq|synthetic|planted|random_walk.")
@click.option("--symbol", required=True, help="Symbol name (also fills '{symbol}' in the path).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs (default from the schema).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Random seed (default from the schema).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (epoch lines go to stderr).")
def train_backtest_command(data: str, symbol: str, epochs: int | None, seed: int | None, out_dir: Path, as_json: bool) -> None:
    """Train on the train split, select on valid, backtest on test; schema defaults for the rest."""
    from tmpipe.engine.api import train_backtest

    overrides = {"epochs": epochs, "seed": seed}
    config = default_config(trademaster={key: value for key, value in overrides.items() if value is not None})
    config = config.model_copy(update={"data": data_section(data)})
    try:
        result = train_backtest(config, symbol=symbol, out_dir=out_dir, progress=lambda r: _print_epoch(r, err=as_json))
    except TmpipeError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        _print_train_result(result)


@engine.command("infer")
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path), help="Model bundle directory.")
@click.option("--data", "data", required=True, help="CSV/Parquet file, TradeMaster split directory, or demo:...")
@click.option("--symbol", default=None, help="Symbol (default: the one the bundle was trained on).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def infer_command(model_dir: Path, data: str, symbol: str | None, as_json: bool) -> None:
    """The action for the last bar, replaying the saved policy over the test window."""
    from tmpipe.engine.api import infer
    from tmpipe.engine.bundle import load_bundle

    try:
        metadata = load_bundle(model_dir).metadata
        config = default_config().model_copy(update={"data": data_section(data, metadata.get("data_config"))})
        result = infer(model_dir, config, symbol=symbol or metadata["symbol"])
    except TmpipeError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{result['symbol']} as of {result['as_of']}: {result['action']} (target position {result['target_position']:+g}) "
               f"at {result['reference_price']:,.4f}")
    click.echo("probabilities " + ", ".join(f"{k} {_fmt(v)}" for k, v in result["probabilities"].items()))


def main() -> None:  # pragma: no cover - `python -m tmpipe.engine.cli`
    engine()


if __name__ == "__main__":  # pragma: no cover
    main()
