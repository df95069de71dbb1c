"""RunContext: the spec is parsed once per task, and the run's mode falls back to the spec's."""

from tmpipe.pipeline.context import RunContext
from tests.pipeline.conftest import spec_text


def _context(tmp_path, conf):
    path = tmp_path / "spec.yaml"
    path.write_text(spec_text())
    return RunContext(dag_id="d", dag_run_id="r", logical_date=None, conf=conf, spec_path=str(path)), path


def test_the_spec_is_parsed_once_per_context(tmp_path):
    ctx, path = _context(tmp_path, {})
    first = ctx.spec
    path.write_text("not: [a spec")  # a second parse would fail
    assert ctx.spec is first


def test_mode_comes_from_the_conf_else_from_the_spec(tmp_path):
    ctx, _ = _context(tmp_path, {})
    assert ctx.mode == ctx.spec.default_mode
    assert _context(tmp_path, {"mode": "inference"})[0].mode == "inference"
