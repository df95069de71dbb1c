"""A folder of specs: one DAG per spec, found by path or by ``dag_id``.

Every ``*.yaml`` (and ``*.yml``) in the specs folder is a pipeline. A spec that does not
validate, or whose ``dag_id`` another spec also uses, does not stop the others: it becomes a
``SpecFailure`` carrying its ``FILE:LINE:COL`` lines, for the DAG factory to show in Airflow
and for ``tmpipe validate`` to print.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tmpipe.errors import SpecError
from tmpipe.spec.loader import load_spec, read_positioned
from tmpipe.spec.model import Spec
from tmpipe.spec.problems import Problem, duplicate_problems

SPEC_SUFFIXES = (".yaml", ".yml")
DAG_ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,250}")


@dataclass(frozen=True)
class SpecFailure:
    """A spec that builds no DAG of its own; ``dag_id`` is the one it names when readable."""

    path: Path
    dag_id: str | None
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Catalog:
    specs: tuple[Spec, ...]
    failures: tuple[SpecFailure, ...]


def specs_dir() -> Path:
    """``TMPIPE_SPECS_DIR``, else ./dag_specs of a checkout, else the packaged examples."""
    configured = os.environ.get("TMPIPE_SPECS_DIR")
    if configured:
        return Path(configured)
    local = Path("dag_specs")
    if local.is_dir():
        return local
    from importlib.resources import files

    return Path(str(files("tmpipe.dag_specs")))


def spec_files(folder: Path) -> list[Path]:
    """The spec files directly in ``folder``, by name (the order failures and duplicates are named in)."""
    return sorted(p for p in folder.iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file())


def declared_dag_id(path: Path) -> str | None:
    """The ``dag.dag_id`` a spec file names, read without validating the rest (None if unreadable)."""
    doc, _ = read_positioned(path)
    data = doc.data
    dag = data.get("dag") if isinstance(data, dict) else None
    dag_id = dag.get("dag_id") if isinstance(dag, dict) else None
    return dag_id if isinstance(dag_id, str) and DAG_ID_PATTERN.fullmatch(dag_id) else None


def load_catalog(paths: list[Path]) -> Catalog:
    """Load every spec; a spec that fails, or that shares its ``dag_id``, becomes a failure."""
    loaded: list[Spec] = []
    failures: list[SpecFailure] = []
    for path in paths:
        try:
            loaded.append(load_spec(path))
        except SpecError as exc:
            failures.append(SpecFailure(path, declared_dag_id(path), tuple(str(p) for p in exc.problems)))
    by_id: dict[str, list[Spec]] = {}
    for spec in loaded:
        by_id.setdefault(spec.dag.dag_id, []).append(spec)
    specs = []
    for dag_id, same in by_id.items():
        if len(same) == 1:
            specs.append(same[0])
            continue
        lines = tuple(str(problem) for problem in duplicate_problems(dag_id, [s.path for s in same]))
        failures.append(SpecFailure(Path(same[0].path), dag_id, lines))
    return Catalog(tuple(specs), tuple(failures))


def find_spec(value: str | Path) -> Path:
    """A spec given by path, or by the ``dag_id`` of a spec in the specs folder."""
    path = Path(value)
    if path.is_file() or path.suffix in SPEC_SUFFIXES or os.sep in str(value):
        return path
    folder = specs_dir()
    matches = [p for p in spec_files(folder)] if folder.is_dir() else []
    matches = [p for p in matches if declared_dag_id(p) == str(value)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SpecError([Problem(str(value), 1, 1, "$", f"no such spec file, and no spec in {folder} has dag_id '{value}'")])
    raise SpecError([Problem(str(matches[0]), 1, 1, "dag.dag_id", f"dag_id '{value}' is named by {', '.join(map(str, matches))}")])
