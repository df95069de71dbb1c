"""Per-run scratch goes after a symbol's last stage succeeds, stays on failure, and at most N runs' stay."""

import pytest
import yaml
from mlflow.exceptions import MlflowException

from tmpipe.pipeline import stages
from tmpipe.pipeline.context import RunContext
from tmpipe.pipeline.scratch import DONE_MARKER

from .conftest import DAG_ID, spec_text


def write_spec(tmp_path, keep_scratch_runs=None, **extra_defaults):
    spec = yaml.safe_load(spec_text(extra_defaults=extra_defaults))
    if keep_scratch_runs is not None:
        spec["dag"]["keep_scratch_runs"] = keep_scratch_runs
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def context(spec_path, mode, run):
    return RunContext(dag_id=DAG_ID, dag_run_id=run, logical_date=None, conf={"mode": mode}, spec_path=str(spec_path))


def scratch(home, run, symbol="AAA"):
    return home / "work" / DAG_ID / run / symbol


def test_scratch_is_removed_after_persist_and_later_stages_need_none_of_it(tmpipe_home, tmp_path):
    ctx = context(write_spec(tmp_path), "both", "manual__1")
    trained = stages.train_backtest(ctx, "AAA", None)
    assert (scratch(tmpipe_home, "manual__1") / "train_backtest").is_dir()  # both: persist is the last stage
    stages.inference(ctx, "AAA", None, run_id=trained["mlflow_run_id"])
    stages.review(ctx, "AAA", None)
    stages.persist(ctx, "AAA", None)
    assert not scratch(tmpipe_home, "manual__1").exists()
    assert scratch(tmpipe_home, "manual__1").parent.is_dir()  # the run's own directory goes with the next run

    # train_backtest mode: its only stage is the last; inference then reads everything from MLflow
    stages.train_backtest(context(ctx.spec_path, "train_backtest", "manual__2"), "AAA", None)
    assert not scratch(tmpipe_home, "manual__2").exists()
    assert not scratch(tmpipe_home, "manual__1").parent.exists()
    ctx = context(ctx.spec_path, "inference", "manual__3")
    stages.inference(ctx, "AAA", None)
    stages.review(ctx, "AAA", None)
    assert stages.persist(ctx, "AAA", None)["signal_artifact_id"]
    assert not scratch(tmpipe_home, "manual__3").exists()


def test_failed_symbol_keeps_its_scratch(tmpipe_home, tmp_path):
    """A persist with no review to publish fails: the symbol's scratch stays for debugging."""
    spec_path = write_spec(tmp_path)
    ctx = context(spec_path, "both", "manual__1")
    stages.train_backtest(ctx, "AAA", None)
    with pytest.raises(MlflowException, match="signal.json"):
        stages.persist(ctx, "AAA", None)  # the run has no review/signal.json to publish
    assert (scratch(tmpipe_home, "manual__1") / "train_backtest").is_dir()
    assert not (scratch(tmpipe_home, "manual__1") / DONE_MARKER).exists()

    # a later run's success removes only finished scratch
    stages.train_backtest(context(spec_path, "train_backtest", "manual__2"), "AAA", None)
    assert (scratch(tmpipe_home, "manual__1") / "train_backtest").is_dir()
    assert not scratch(tmpipe_home, "manual__2").exists()


def test_at_most_n_runs_of_finished_scratch_are_kept(tmpipe_home, tmp_path):
    spec_path = write_spec(tmp_path, keep_scratch_runs=2)
    for run in ("manual__1", "manual__2"):
        stages.train_backtest(context(spec_path, "train_backtest", run), "AAA", None)
    assert (scratch(tmpipe_home, "manual__1") / "train_backtest").is_dir()
    assert (scratch(tmpipe_home, "manual__2") / "train_backtest").is_dir()
    stages.train_backtest(context(spec_path, "train_backtest", "manual__3"), "AAA", None)
    assert not scratch(tmpipe_home, "manual__1").parent.exists()
    assert (scratch(tmpipe_home, "manual__2") / "train_backtest").is_dir()
    assert (scratch(tmpipe_home, "manual__3") / "train_backtest").is_dir()


def test_a_rerun_unmarks_its_scratch_so_another_run_cannot_remove_it(tmpipe_home, tmp_path):
    spec_path = write_spec(tmp_path, keep_scratch_runs=1)
    ctx = context(spec_path, "train_backtest", "manual__1")
    stages.train_backtest(ctx, "AAA", None)
    assert (scratch(tmpipe_home, "manual__1") / DONE_MARKER).is_file()
    ctx.work_dir("AAA")  # a cleared task starts again in the same scratch
    assert not (scratch(tmpipe_home, "manual__1") / DONE_MARKER).exists()
    stages.train_backtest(context(spec_path, "train_backtest", "manual__2"), "AAA", None)
    assert (scratch(tmpipe_home, "manual__1") / "train_backtest").is_dir()  # in use: kept beyond the cap
