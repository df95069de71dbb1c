"""``tmpipe signals backfill|score|list|report`` on the demo data, through click."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tmpipe.cli import main


def test_backfill_gives_a_graded_history_and_a_report(tmpipe_home, tmp_path):
    runner = CliRunner()
    backfilled = runner.invoke(main, ["signals", "backfill", "--symbol", "SPX", "--epochs", "1", "--max-signals", "6"])
    assert backfilled.exit_code == 0, backfilled.output
    assert "model trained on bars up to 2015-12-30" in backfilled.output

    listed = json.loads(runner.invoke(main, ["signals", "list", "--symbol", "SPX", "--json"]).output)
    assert len(listed) == 6 and all(row["graded"] for row in listed)
    as_of = sorted(row["as_of"] for row in listed)
    assert as_of[0] >= "2015-12-31"  # the test window the model never saw
    again = json.loads(runner.invoke(main, ["signals", "score", "--json"]).output)
    assert again[0]["newly_graded"] == 0 and again[0]["record"]["graded"] == 6

    report = runner.invoke(main, ["signals", "report", "--symbol", "SPX", "--out", str(tmp_path), "--json"])
    assert report.exit_code == 0, report.output
    record = json.loads(report.output)
    assert record["graded"] == 6 and (tmp_path / "SPX_signals.png").stat().st_size > 10_000


def test_report_without_graded_signals_says_what_to_run(tmpipe_home):
    result = CliRunner().invoke(main, ["signals", "report", "--symbol", "NDX"])
    assert result.exit_code == 1 and "tmpipe signals backfill --symbol NDX" in result.output
