"""Property-based fuzz of what a user can hand tmpipe: specs, dag_run.conf values, link configs, env.

Each generated input either validates or gives error lines of the project's shape (one per
problem, ``FILE:LINE:COL: path: message``, or one ``Error: ...`` line); never a traceback, never
more than 10 s. Ordinary inputs run in-process through the CLI; bombs run in a child process
under a memory cap (tests/bounded.py). Examples per test are in EXAMPLES (>= 300 in total);
the runs are derandomized so CI sees the same inputs each time.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tmpipe.cli import main
from tmpipe.spec import schemas
from tmpipe.spec.yaml_safety import MAX_VALUES

from .bounded import TIME_LIMIT_SECONDS, run_tmpipe_bounded

SHIPPED_LINES = (Path(__file__).resolve().parent.parent / "dag_specs/trademaster_autogen_pipeline_workflow.yaml").read_text().splitlines()
PROBLEM_LINE = re.compile(r"^.+:\d+:\d+: \S.*: .+$")
ERROR_LINE = re.compile(r"^Error: .+$")
EXAMPLES = {"spec_mutations": 120, "random_specs": 60, "confs": 80, "link_configs": 60, "environments": 40, "bombs": 6}
FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

# Tokens a new user (or an attacker) might type where a value or a line goes.
NASTY = [
    ".nan", ".inf", "-.inf", "NaN", "ON", "no", "0700", "0x1F", "12:30", "1e999", "1.0e999", "1_000", "~", "null", "",
    "!!python/object/apply:os.system [echo, hi]", "!!python/object/apply:os.system {a: 1}", "!!str 5", "!foo x",
    "&a [1, 2]", "*a", "*nowhere", "<<: *a", "[", "]", "{", "}", "[1, 2", "{a: 1", '"open', "'open", '"a\\qb"',
    "\x01", "\x7f", "\t", "é", "\u2028", "\ufeff", "2024-13-45", "2024-01-01", "- x", ": :", "a: b: c", "? x", "|",
    ">", "#", "@x", "`x", "%x", "---", "...", "SPX\n", "a/b", "../etc/passwd", "9" * 5000, "[" * 70 + "]" * 70,
]
SECTION_KEYS = {
    section: sorted(schemas.resolve_ref(schemas.schema(f"urn:tmpipe:section:{section}"))["properties"])
    for section in ("data", "trademaster", "review", "mlflow", "webui")
}

scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40) | st.sampled_from(NASTY)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


@st.composite
def stage_configs(draw) -> dict:
    """Mostly the real section and key names (so validation goes deep), with any values."""
    config: dict = {}
    for _ in range(draw(st.integers(0, 4))):
        section = draw(st.sampled_from([*SECTION_KEYS, "trademastr", "x"]))
        keys = SECTION_KEYS.get(section, ["epochs"])
        values = config.setdefault(section, {}) if section in SECTION_KEYS else {}
        values[draw(st.sampled_from(keys) | st.text(max_size=8))] = draw(json_values)
        config[section] = values
    return config


@st.composite
def spec_mutations(draw) -> str:
    lines = list(SHIPPED_LINES)
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        token = draw(st.sampled_from(NASTY) | st.text(max_size=20))
        kind = draw(st.sampled_from(["value", "insert", "delete", "indent", "truncate"]))
        if kind == "value" and ":" in lines[index]:
            lines[index] = lines[index].split(":", 1)[0] + ": " + token
        elif kind == "insert":
            lines.insert(index, " " * draw(st.integers(0, 8)) + token)
        elif kind == "delete" and len(lines) > 1:
            del lines[index]
        elif kind == "indent":
            lines[index] = " " * draw(st.integers(0, 3)) + lines[index]
        elif kind == "truncate":
            lines = lines[: index + 1]
            lines[-1] = lines[-1][: draw(st.integers(0, len(lines[-1])))]
    return "\n".join(lines) + draw(st.sampled_from(["\n", ""]))


@st.composite
def random_specs(draw) -> str:
    if draw(st.booleans()):
        return draw(st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#,? \n\t.0123456789~")), max_size=200))
    spec = {"schema_version": draw(st.sampled_from([1, 2, "1"])), "dag": {"dag_id": draw(st.sampled_from(["demo", "a b", ""]))}}
    spec["defaults"] = draw(stage_configs())
    spec["symbols"] = draw(st.dictionaries(st.sampled_from(["SPX", "ON", "0700", "a/b", "x" * 40]), stage_configs(), max_size=3))
    if draw(st.booleans()):
        spec[draw(st.text(max_size=10))] = draw(json_values)
    return yaml.safe_dump(spec, default_flow_style=draw(st.booleans()), allow_unicode=draw(st.booleans()))


@st.composite
def confs(draw) -> str:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.text(max_size=60) | st.sampled_from(NASTY))
    conf = {"config": draw(stage_configs())}
    for key in draw(st.sets(st.sampled_from(["mode", "symbol", "symbols", "max_symbols", "extra"]))):
        conf[key] = draw(json_values | st.sampled_from(["both", "inference", "SPX", ["SPX", "NDX"], 3]))
    return json.dumps(conf)


def assert_one_line_per_problem(result, seconds: float, problem_stream: str) -> None:
    assert seconds < TIME_LIMIT_SECONDS, f"{seconds:.1f}s"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        return
    assert result.exit_code == 1, result.output
    lines = getattr(result, problem_stream).splitlines()
    assert lines, result.output
    if ERROR_LINE.match(lines[0]):
        assert len(lines) == 1, lines
    else:
        assert all(PROBLEM_LINE.match(line) for line in lines), lines


def _invoke(args: list[str]):
    started = time.monotonic()
    result = CliRunner().invoke(main, args)
    return result, time.monotonic() - started


def _validate_spec_text(path, text: str) -> None:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    assert_one_line_per_problem(*_invoke(["validate", str(path)]), "stdout")


@settings(FUZZ, max_examples=EXAMPLES["spec_mutations"])
@given(text=spec_mutations())
def test_mutated_shipped_spec_validates_or_says_why(tmp_path_factory, text):
    _validate_spec_text(tmp_path_factory.getbasetemp() / "mutated.yaml", text)


@settings(FUZZ, max_examples=EXAMPLES["random_specs"])
@given(text=random_specs())
def test_random_spec_validates_or_says_why(tmp_path_factory, text):
    _validate_spec_text(tmp_path_factory.getbasetemp() / "random.yaml", text)


@settings(FUZZ, max_examples=EXAMPLES["confs"])
@given(conf=confs())
def test_dag_run_conf_is_accepted_or_says_why(conf):
    assert_one_line_per_problem(*_invoke(["explain", "--symbol", "SPX", "--json", "--conf", conf]), "stderr")


@settings(FUZZ, max_examples=EXAMPLES["link_configs"])
@given(config=stage_configs())
def test_link_config_is_accepted_or_says_why(tmp_path_factory, config):
    text = json.dumps(config)
    assert_one_line_per_problem(*_invoke(["explain", "--symbol", "SPX", "--json", "--link-config", text]), "stderr")
    path = tmp_path_factory.getbasetemp() / "link.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    assert_one_line_per_problem(*_invoke(["validate", str(path)]), "stdout")


# What os.environ can hold: no NUL, no lone surrogates.
env_text = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30)


@st.composite
def environments(draw) -> dict[str, str]:
    environ = {}
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from([*SECTION_KEYS, "x"]))
        key = draw(st.sampled_from(SECTION_KEYS.get(section, ["epochs"])) | st.text(alphabet="ABx_", max_size=6))
        name = f"TMPIPE__{section.upper()}__{key.upper()}{draw(st.sampled_from(['', '', '', '__X']))}"
        plain = st.sampled_from(["3", "0.5", "true", "null", "demo", "5d", "rules", "2024-01-01"])
        value = draw(plain | st.sampled_from(NASTY).filter(lambda v: "\x00" not in v) | env_text | json_values.map(json.dumps))
        environ[name] = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return environ


@settings(FUZZ, max_examples=EXAMPLES["environments"])
@given(environ=environments())
def test_environment_is_accepted_or_says_why(environ):
    started = time.monotonic()
    result = CliRunner().invoke(main, ["explain", "--symbol", "SPX", "--json"], env=environ)
    assert_one_line_per_problem(result, time.monotonic() - started, "stderr")


@st.composite
def bombs(draw) -> str:
    kind = draw(st.sampled_from(["aliases", "merge", "nesting", "size"]))
    width = draw(st.integers(4, 12))
    levels = math.ceil(math.log(MAX_VALUES) / math.log(width)) + 1 + draw(st.integers(0, 4))
    if kind == "aliases":
        lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
        lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
        return "\n".join(lines) + "\n"
    if kind == "merge":
        lines = ["m0: &m0 {x: 1}"]
        lines += [f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * width)}]}}" for i in range(1, levels)]
        return "\n".join(lines) + "\n"
    if kind == "nesting":
        depth = draw(st.integers(65, 200_000))
        return "a: " + draw(st.sampled_from(["[", "{a: "])) * depth + "\n"
    return "a:\n" + "  - x\n" * (draw(st.integers(1, 40)) * 100_000)


@settings(FUZZ, max_examples=EXAMPLES["bombs"])
@given(text=bombs())
def test_bombs_end_in_one_line_under_a_memory_cap(tmp_path_factory, text):
    path = tmp_path_factory.getbasetemp() / "bomb.yaml"
    path.write_text(text)
    result = run_tmpipe_bounded("validate", str(path))
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    [line] = result.stdout.splitlines()
    assert PROBLEM_LINE.match(line), line
    assert result.seconds < TIME_LIMIT_SECONDS
