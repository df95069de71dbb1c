"""Hostile and broken YAML: one clear line, at the right place, in bounded time and memory."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from tmpipe.cli import main
from tmpipe.spec.loader import load_spec
from tmpipe.spec.yaml_safety import MAX_DEPTH, MAX_DOCUMENT_BYTES

from ..bounded import TIME_LIMIT_SECONDS, run_tmpipe_bounded

SHIPPED = Path(__file__).resolve().parents[2] / "dag_specs/trademaster_autogen_pipeline_workflow.yaml"


def _spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _validate(path: Path):
    return CliRunner().invoke(main, ["validate", str(path)])


def _one_line(result, path: Path) -> str:
    """The single problem line of a failed `tmpipe validate`, without the file name."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.output
    return lines[0].removeprefix(f"{path}:")


def _alias_bomb(levels: int, width: int = 9) -> str:
    lines = ["schema_version: 1", "dag: {dag_id: bomb}", f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _merge_key_bomb(levels: int, width: int = 9) -> str:
    lines = ["m0: &m0 {x: 1}"]
    lines += [f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * width)}]}}" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


# --- bullet 1: alias bombs, huge and deep documents --------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (_alias_bomb(9), "7:5: $: more than 50,000 values once aliases are expanded"),
        (_merge_key_bomb(8), "6:14: $: more than 50,000 values once aliases are expanded"),
        ("a: &a [*a]\n", "1:4: $: an alias refers to the list or mapping that contains it"),
    ],
    ids=["list-bomb", "merge-key-bomb", "recursive-alias"],
)
def test_alias_bombs_fail_fast_under_a_memory_cap(tmp_path, text, expected):
    path = _spec(tmp_path, text)
    result = run_tmpipe_bounded("validate", str(path))
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [f"{path}:{expected}"]
    assert "Traceback" not in result.stderr
    assert result.seconds < TIME_LIMIT_SECONDS


def test_a_document_past_the_size_limit_is_refused_before_parsing(tmp_path):
    text = SHIPPED.read_text() + "".join(f"  S{i}:\n    trademaster: {{epochs: 3}}\n" for i in range(200_000))
    path = _spec(tmp_path, text)
    assert path.stat().st_size > 5_000_000
    result = run_tmpipe_bounded("validate", str(path))
    assert result.stdout.splitlines() == [f"{path}:1:1: $: the file is larger than the limit of {MAX_DOCUMENT_BYTES:,} bytes"]
    assert result.seconds < 2


def test_a_spec_near_the_size_limit_still_validates_in_time(tmp_path):
    base = SHIPPED.read_text()
    per_symbol = "  S{i}:\n    data: {{lookback: 5}}\n    trademaster: {{epochs: 3, seed: {i}}}\n"
    count = (MAX_DOCUMENT_BYTES - len(base)) // len(per_symbol.format(i=99999))
    path = _spec(tmp_path, base + "".join(per_symbol.format(i=i) for i in range(count)))
    assert path.stat().st_size > MAX_DOCUMENT_BYTES * 0.9
    result = run_tmpipe_bounded("validate", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.seconds < TIME_LIMIT_SECONDS


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 50_000])
def test_deep_nesting_is_one_line_not_a_recursion_error(tmp_path, depth):
    path = _spec(tmp_path, "a: " + "[" * depth + "]" * depth + "\n")
    result = run_tmpipe_bounded("validate", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stdout.splitlines()
    column = int(line.removeprefix(f"{path}:1:").split(":")[0])
    assert line.endswith(f": $: nested deeper than {MAX_DEPTH} levels")
    assert MAX_DEPTH <= column <= 4 + MAX_DEPTH  # where our limit is passed, not libyaml's (1000)


# --- bullet 2: tags are rejected wherever they are -------------------------------------


@pytest.mark.parametrize(
    "value, tag",
    [
        ("!!python/object/apply:os.system [echo, hi]", "!!python/object/apply:os.system"),
        ("!!python/object/apply:os.system {cmd: echo}", "!!python/object/apply:os.system"),
        ("!!python/name:os.system", "!!python/name:os.system"),
        ("!custom 3", "!custom"),
        ("!!str 3", "!!str"),
    ],
)
def test_tags_are_rejected_on_scalars_lists_and_mappings(tmp_path, value, tag):
    path = _spec(tmp_path, f"schema_version: 1\ndag:\n  dag_id: demo\ndefaults:\n  trademaster:\n    epochs: {value}\n")
    assert _one_line(_validate(path), path) == (
        f"6:13: $: the tag {tag} is not allowed: tags are not supported (quote a value to keep it a string)"
    )


# --- bullet 3: keys stay the text the user wrote ----------------------------------------


def test_symbol_keys_keep_the_text_yaml_11_would_coerce(tmp_path):
    path = _spec(tmp_path, SHIPPED.read_text() + "  ON:\n    trademaster: {epochs: 2}\n  0700: {}\n  1e3: {}\n  NO: {}\n")
    assert _validate(path).exit_code == 0
    assert set(load_spec(path).symbols) == {"NDX", "ON", "0700", "1e3", "NO"}
    explained = CliRunner().invoke(main, ["explain", "--spec", str(path), "--symbol", "ON", "--json"])
    assert '"epochs": 2' in explained.stdout


def test_a_key_yaml_11_reads_as_a_number_is_checked_as_the_text_written(tmp_path):
    path = _spec(tmp_path, SHIPPED.read_text() + "  12:30: {}\n")
    line = len(SHIPPED.read_text().splitlines()) + 1
    assert _one_line(_validate(path), path).startswith(f"{line}:3: symbols[\"12:30\"]: invalid symbol name '12:30': ")


def test_keys_that_differ_only_in_yaml_11_spelling_are_not_merged(tmp_path):
    path = _spec(tmp_path, "schema_version: 1\ndag: {dag_id: demo}\nsymbols:\n  'true': {}\n  yes: {}\n  on: {}\n")
    assert _validate(path).exit_code == 0
    assert set(load_spec(path).symbols) == {"true", "yes", "on"}


def test_a_value_yaml_11_reads_as_another_type_names_the_text_as_written(tmp_path):
    path = _spec(tmp_path, "schema_version: 1\ndag: {dag_id: demo}\ndemo_symbols: [SPX, ON]\n")
    assert _one_line(_validate(path), path) == (
        "3:21: demo_symbols[1]: 'ON' is read by YAML as True, which is not of type 'string'; put it in quotes to keep it as text"
    )


# --- bullet 7: syntax errors, said in a sentence where the broken construct starts --------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("schema_version: 1\ndag:\n  tags: [a, b\n  owner: me\n",
         "3:9: $: YAML syntax error: this '[' is never closed: expected ',' or ']' before line 4, column 8"),
        ("schema_version: 1\ndag:\n  tags: [a, b\n",
         "3:9: $: YAML syntax error: this '[' is never closed: expected ',' or ']' before line 4, column 1"),
        ("schema_version: 1\ndag: {dag_id: demo,\n",
         "2:6: $: YAML syntax error: this '{' is never closed: expected ',' or '}' before line 3, column 1"),
        ('schema_version: 1\ndag:\n  dag_id: "demo\n  owner: me\n',
         "3:11: $: YAML syntax error: this quote is never closed"),
        ('schema_version: 1\ndag:\n  dag_id: "demo\n  owner: "me"\n',
         "3:11: $: YAML syntax error: the quoted value that starts here runs on to line 4; is its closing quote missing?"),
        ("schema_version: 1\ndag:\n  dag_id: demo\n  owner\n  retries: 1\n",
         "4:3: $: YAML syntax error: this line has no ':' after its key; write 'key: value' (or '- value' for a list item)"),
        ("schema_version: 1\ndag:\n  dag_id: demo\n owner: me\n",
         "4:2: $: YAML syntax error: this line's indentation does not fit the lines above it (the block it should belong "
         "to starts at line 1); align it with its sibling keys, and do not mix '- ' items with 'key:' entries at one level"),
        ("schema_version: 1\ndag:\n\tdag_id: demo\n", "3:1: $: YAML syntax error: a tab cannot indent YAML; use spaces"),
        ("schema_version: 1\ndag: {dag_id: demo}\ndag2: *nothing\n",
         "3:7: $: YAML syntax error: the alias *nothing refers to no anchor &nothing defined before it"),
        ("schema_version: 1\n---\ndag: {}\n",
         "2:1: $: YAML syntax error: a file holds one YAML document; remove this second document (from '---')"),
    ],
    ids=["unclosed-bracket", "unclosed-bracket-at-eof", "unclosed-brace-at-eof", "unclosed-quote",
         "unclosed-quote-closed-by-next", "key-without-colon", "dedent", "tab", "undefined-alias", "two-documents"],
)
def test_syntax_errors_point_at_the_broken_construct(tmp_path, text, expected):
    path = _spec(tmp_path, text)
    assert _one_line(_validate(path), path) == expected


def test_a_control_character_is_one_line_at_its_position(tmp_path):
    path = _spec(tmp_path, "schema_version: 1\ndag:\n  dag_id: de\x01mo\n")
    assert _one_line(_validate(path), path) == "3:13: $: control character U+0001 is not allowed in YAML"


def test_a_non_utf8_byte_is_reported_at_its_line_and_character_column(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes("schema_version: 1\ndag:\n  description: café \xff\n".encode("utf-8").replace(b"\xc3\xbf", b"\xff"))
    assert _one_line(_validate(path), path) == (
        "3:21: $: the file is not UTF-8 text: byte 0xff cannot be decoded (save it as UTF-8)"
    )
