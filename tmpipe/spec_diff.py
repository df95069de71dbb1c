"""``tmpipe diff OLD NEW``: what a spec edit changes, in lines a pull-request reviewer reads.

Three parts: the Airflow DAG the spec generates (schedule, tasks, params, run settings), the
spec's policy (limits, symbol selection, demo symbols, secret pattern), and per symbol the
resolved config with the layer that sets each value. Symbols are resolved from the spec
alone (schema defaults, spec defaults, spec symbols): the environment, a run's conf and WebUI
links are the same for both files, or not known here, so they are left out.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from tmpipe.config.resolver import resolve
from tmpipe.generator import dag_factory_config
from tmpipe.redaction import redact_url_credentials
from tmpipe.spec.model import Spec

# Keys of the dag-factory config that differ between any two files without changing the DAG.
FILE_BOUND_KEYS = {"doc_md", "spec_path"}
EVERY_SYMBOL = "every other symbol"


def spec_diff(old: Spec, new: Spec) -> list[str]:
    """The changes from ``old`` to ``new``, one line each (indented under a heading); [] if none."""
    lines: list[str] = []
    dag_lines = _changes(_dag_view(old), _dag_view(new))
    if old.dag.dag_id != new.dag.dag_id:
        dag_lines.insert(0, f"dag_id changes from {old.dag.dag_id} to {new.dag.dag_id}: Airflow sees a new DAG; "
                            f"the old DAG's runs stay under {old.dag.dag_id}, and WebUI symbol links must name the new id")
    if dag_lines:
        lines += [f"DAG {new.dag.dag_id}:"] + [f"  {line}" for line in dag_lines]
    policy_lines = _changes(_policy_view(old), _policy_view(new))
    if policy_lines:
        lines += ["Spec policy:"] + [f"  {line}" for line in policy_lines]
    symbol_lines = _symbol_changes(old, new)
    if symbol_lines:
        lines += ["Resolved config per symbol (schema defaults, spec defaults and spec symbols; "
                  "the environment, dag_run.conf and WebUI links are not compared):"] + symbol_lines
    return lines


def _dag_view(spec: Spec) -> dict[str, Any]:
    config = dag_factory_config(spec)[spec.dag.dag_id]
    return _flatten(_without(config, FILE_BOUND_KEYS))


def _policy_view(spec: Spec) -> dict[str, Any]:
    return _flatten({
        "modes.default": spec.default_mode,
        "limits": asdict(spec.limits),
        "symbol_selection": asdict(spec.symbol_selection),
        "demo_symbols": list(spec.demo_symbols),
        "security.secret_env_pattern": spec.secret_env_pattern,
    })


def _symbol_changes(old: Spec, new: Spec) -> list[str]:
    named = list(dict.fromkeys([*old.demo_symbols, *old.symbols, *new.demo_symbols, *new.symbols]))
    other = _unnamed_symbol(named)
    everyone = _config_changes(old, new, other)
    lines = [f"  {EVERY_SYMBOL} (not named in either spec):"] + [f"    {line}" for line in everyone] if everyone else []
    for symbol in named:
        in_old, in_new = _is_named(old, symbol), _is_named(new, symbol)
        if not in_old:
            heading = f"  {symbol}: newly named in the spec ({_where(new, symbol)}); compared with an unnamed symbol before"
        elif not in_new:
            heading = f"  {symbol}: no longer named in the spec; compared with an unnamed symbol now"
        else:
            heading = f"  {symbol}:"
        own = [line for line in _config_changes(old, new, symbol) if line not in everyone]
        if own or in_old != in_new:
            lines += [heading] + [f"    {line}" for line in own]
    return lines


def _is_named(spec: Spec, symbol: str) -> bool:
    return symbol in spec.symbols or symbol in spec.demo_symbols


def _where(spec: Spec, symbol: str) -> str:
    places = [name for name, found in (("demo_symbols", symbol in spec.demo_symbols), ("symbols", symbol in spec.symbols)) if found]
    return " and ".join(places)


def _unnamed_symbol(named: list[str]) -> str:
    """A valid symbol name that neither spec names: it gets defaults only, like any WebUI symbol."""
    candidate, index = "ANY", 0
    while candidate in named:
        index += 1
        candidate = f"ANY{index}"
    return candidate


def _config_changes(old: Spec, new: Spec, symbol: str) -> list[str]:
    before = resolve(old, symbol, environ={})
    after = resolve(new, symbol, environ={})
    old_values, new_values = _flatten(before.values), _flatten(after.values)
    lines = []
    moved: dict[tuple[str, str], list[str]] = {}
    for key in sorted(set(old_values) | set(new_values)):
        was, now = old_values.get(key, _MISSING), new_values.get(key, _MISSING)
        was_layer, now_layer = _layer(before, key), _layer(after, key)
        if was == now and was_layer == now_layer:
            continue
        if was == now:
            moved.setdefault((was_layer, now_layer), []).append(key)
        elif was is _MISSING:
            lines.append(f"{key} is new: {_shown(now)} ({now_layer})")
        elif now is _MISSING:
            lines.append(f"{key} is removed (was {_shown(was)}, {was_layer})")
        else:
            lines.append(f"{key} changes from {_shown(was)} ({was_layer}) to {_shown(now)} ({now_layer})")
    for (was_layer, now_layer), keys in moved.items():
        lines.append(f"same value, now set by {now_layer} instead of {was_layer}: {', '.join(keys)}")
    return lines


def _layer(resolved, key: str) -> str:
    origin = resolved.provenance.get(key)
    if origin is None:  # a list or mapping set whole: its provenance is on the first leaf below it
        matches = [value for name, value in resolved.provenance.items() if name.startswith(key + ".")]
        origin = matches[0] if matches else None
    return origin.layer if origin is not None else "unset"


class _Missing:
    def __repr__(self) -> str:
        return "missing"


_MISSING = _Missing()


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    lines = []
    for key in sorted(set(old) | set(new)):
        was, now = old.get(key, _MISSING), new.get(key, _MISSING)
        if was == now:
            continue
        if was is _MISSING:
            lines.append(f"{key} is new: {_shown(now)}")
        elif now is _MISSING:
            lines.append(f"{key} is removed (was {_shown(was)})")
        else:
            lines.append(f"{key} changes from {_shown(was)} to {_shown(now)}")
    return lines


def _flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaves; lists stay whole values (a list layer replaces, it never merges)."""
    if not isinstance(values, dict) or not values:
        return {prefix: values} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _without(values: Any, keys: set[str]) -> Any:
    if isinstance(values, dict):
        return {k: _without(v, keys) for k, v in values.items() if k not in keys}
    return values


def _shown(value: Any) -> str:
    """A value as JSON, URL credentials masked (a diff is pasted into pull requests)."""
    text = redact_url_credentials(json.dumps(value, ensure_ascii=False, default=str))
    return text if len(text) <= 120 else text[:117] + "..."
