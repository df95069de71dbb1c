"""Spec -> a plain dag-factory config dict -> the Airflow DAG.

The config dict is what ``tmpipe render`` prints; it names only this project's operators
(the spec itself can never name a Python callable). ``build_dags`` and the placeholder
DAG of a spec that does not load are the only parts here that import Airflow and dag-factory.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from functools import cache
from pathlib import Path
from typing import Any

from tmpipe.pipeline.modes import MODES
from tmpipe.spec.catalog import SpecFailure, load_catalog, spec_files
from tmpipe.spec.loader import default_spec_path
from tmpipe.spec import schemas
from tmpipe.spec.model import Spec
from tmpipe.spec.schemas import STAGE_CONFIG

CHAIN_GROUP_ID = "symbol_chain"
SCORE_TASK_ID = "score_signals"
log = logging.getLogger(__name__)

# Airflow's own standard provider imports a name Airflow 3 deprecated, and the dags file imports
# that module (for the DAG processor to pre-import); the warning is Airflow's to fix and tells a
# tmpipe user nothing. Only that message from that module is hidden, in every process that
# imports the generator first (the dags file does).
warnings.filterwarnings(
    "ignore",
    message=r"The `airflow\.utils\.operator_helpers\.determine_kwargs` attribute is deprecated",
    module=r"airflow\.providers\.standard\.sensors\.python\Z",
)


def dag_factory_config(spec: Spec) -> dict[str, Any]:
    """The dag-factory config for the spec's DAG; plain data (``__type__`` marks objects)."""
    dag = spec.dag
    spec_path = str(Path(spec.path).absolute())
    operators = "tmpipe.operators"
    return {
        dag.dag_id: {
            "description": dag.description,
            "schedule": dag.schedule,
            "start_date": dag.start_date,
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "max_active_tasks": dag.max_active_symbols * 2 + 2,
            "tags": list(dag.tags),
            "render_template_as_native_obj": True,
            "doc_md": _doc(spec),
            "default_args": {
                "owner": dag.owner,
                "retries": dag.retries,
                "retry_delay": {"__type__": "datetime.timedelta", "seconds": dag.retry_delay_seconds},
                "execution_timeout": {"__type__": "datetime.timedelta", "minutes": dag.execution_timeout_minutes},
            },
            "params": trigger_params(spec),
            "tasks": {
                "resolve_symbols": {
                    "operator": f"{operators}.symbols.ResolveSymbolsOperator",
                    "spec_path": spec_path,
                },
                CHAIN_GROUP_ID: {
                    "decorator": f"{operators}.chain.symbol_chain_group",
                    "python_callable": f"{operators}.chain.build_symbol_chain",
                    "partial": {"spec_path": spec_path},
                    "expand": {"symbol": "+resolve_symbols"},
                    "dependencies": ["resolve_symbols"],
                },
                SCORE_TASK_ID: {
                    "operator": f"{operators}.signals.ScoreSignalsOperator",
                    "spec_path": spec_path,
                    "trigger_rule": "all_done",
                    "retries": 0,
                    "dependencies": [CHAIN_GROUP_ID],
                },
                "summarize": {
                    "operator": f"{operators}.summary.SummarizeOperator",
                    "spec_path": spec_path,
                    "chain_group_id": CHAIN_GROUP_ID,
                    "trigger_rule": "all_done",
                    "retries": 0,
                    "dependencies": [CHAIN_GROUP_ID, SCORE_TASK_ID],
                },
            },
        }
    }


def trigger_params(spec: Spec) -> dict[str, Any]:
    """The trigger form: each ``dag_run.conf`` key with a title, a description and examples."""
    demo = list(spec.demo_symbols) or ["SPX"]
    return {
        "mode": _param(spec.default_mode, "string", "Run mode", "both: train, backtest, infer, review, persist; train_backtest: stop after training; "
                       "inference: use each symbol's promoted model.", examples=list(MODES), enum=list(MODES)),
        "symbol": _param(None, ["null", "string"], "One symbol", "Run exactly this symbol (skips the WebUI symbol list).", examples=demo[:1]),
        "symbols": _param(None, ["null", "array"], "Symbols", "Run exactly these symbols (more than the cap: see the spec's symbol_selection).",
                          examples=[demo], items={"type": "string"}),
        "max_symbols": _param(None, ["null", "integer"], "Symbol cap", f"At most this many symbols (limit {spec.limits.max_symbols}; may lower it, not raise it).",
                              examples=[1]),
        "config": _param({}, "object", "Stage config", "Stage settings for this run, validated against schemas/stage_config.schema.json; "
                         "mappings merge over the spec's, lists replace. Endpoints, secrets, files and the promotion gate are operator-only.",
                         examples=[{"trademaster": {"epochs": 3, "seed": 7}}, {"review": {"thresholds": {"min_confidence": 0.6}}}],
                         **stage_config_sections()),
    }


@cache
def stage_config_sections() -> dict[str, Any]:
    """The stage-config schema down to its sections, each naming its keys, for the trigger form.

    Airflow checks a param's schema against the meta-schema whenever the DAG is parsed; the
    whole stage-config schema would cost about 60 ms per DAG per parse, its sections about 2 ms.
    A misspelt section is refused at trigger time; each key is checked in resolve_symbols,
    with the full schema (``tmpipe schema stage_config``).
    """
    full = schemas.schema(STAGE_CONFIG)
    sections = {}
    for name, prop in full["properties"].items():
        target = schemas.resolve_ref(prop)
        keys = ", ".join(target.get("properties", {}))
        sections[name] = {"type": "object", "title": name, "description": f"{prop.get('description', '')} Keys: {keys}."}
    return {"additionalProperties": False, "properties": sections}


def _param(default: Any, type_: str | list[str], title: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"__type__": "airflow.sdk.Param", "default": default, "type": type_, "title": title, "description": description, **schema}


def _doc(spec: Spec) -> str:
    """The DAG's docs: what it does, then the spec it was built from, so each DAG version records it.

    Credentials inside URLs are masked: the Airflow UI shows docs to everyone who may see the DAG.
    """
    from tmpipe.redaction import redact_url_credentials

    text = redact_url_credentials(spec.text.rstrip())
    fence = "````" if "```" in text else "```"
    return (
        f"Generated by tmpipe from `{Path(spec.path).name}` (sha256 {spec.sha256}).\n\n"
        "Per symbol: train_backtest -> inference -> review -> persist, then score_signals (grades earlier "
        "signals whose horizon has elapsed) and summarize, which fails the run if resolve_symbols or any symbol failed. "
        f"Modes: {', '.join(MODES)} (default {spec.default_mode}).\n\n"
        f"#### The spec\n\n{fence}yaml\n{text}\n{fence}\n"
    )


def build_dags(globals_dict: dict[str, Any], specs: str | os.PathLike[str] | None = None) -> None:
    """Register one DAG per spec in ``globals_dict`` through dag-factory.

    ``specs`` is a spec file (``TMPIPE_SPEC``) or a folder whose every ``*.yaml`` is a spec
    (``TMPIPE_SPECS_DIR``, the project's dag_specs/). A spec that does not load, or shares its
    dag_id with another, stops no other spec: it is logged with its ``FILE:LINE:COL`` lines and
    becomes a paused placeholder DAG that shows them in its docs and fails when triggered
    (Airflow drops every DAG of a dags file that raises). Opens no socket and touches no
    database: all backend calls happen inside tasks; nothing per symbol is resolved here.
    """
    with warnings.catch_warnings():
        # dag-factory 1.1 imports Airflow 2 paths that Airflow 3 shims with a warning each.
        warnings.filterwarnings("ignore", message=r"The `airflow\..*` attribute is deprecated")
        from dagfactory import load_yaml_dags
        from dagfactory.utils import cast_with_type

    source = Path(specs) if specs else default_spec_path()
    catalog = load_catalog(spec_files(source) if source.is_dir() else [source])
    config: dict[str, Any] = {}
    for spec in catalog.specs:
        config.update(dag_factory_config(spec))
    # dag-factory would render doc_md into its own YAML dump of the config (costly, and the
    # spec twice); the docs are set on each DAG once it is built instead.
    docs = {dag_id: dag_config.pop("doc_md") for dag_id, dag_config in config.items()}
    if config:
        load_yaml_dags(globals_dict=globals_dict, config_dict=cast_with_type(config))
    for dag_id, doc in docs.items():
        globals_dict[dag_id].doc_md = doc
        _wait_for_every_stage(globals_dict[dag_id])
    taken = set(config)
    for failure in catalog.failures:
        log.error("tmpipe: spec %s builds no DAG:\n%s", failure.path, "\n".join(failure.lines))
        dag_id = failure.dag_id if failure.dag_id and failure.dag_id not in taken else invalid_spec_dag_id(failure.path)
        taken.add(dag_id)
        globals_dict[dag_id] = invalid_spec_dag(dag_id, failure)


def _wait_for_every_stage(dag: Any) -> None:
    """Make score_signals and summarize wait for every stage of each symbol, not only persist.

    resolve_symbols has the scheduler skip the stages a mode leaves out before they start: in
    train_backtest mode persist is skipped at once, so an all_done that waited for persist alone
    would fire while a symbol's train_backtest is still up for retry (a killed worker's task) and
    report the symbol as unfinished.
    """
    stages = [task for task_id, task in dag.task_dict.items() if task_id.startswith(CHAIN_GROUP_ID + ".")]
    for task_id in (SCORE_TASK_ID, "summarize"):
        dag.task_dict[task_id].set_upstream(stages)


def invalid_spec_dag_id(path: Path) -> str:
    return "tmpipe_invalid_spec__" + re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem)[:200]


def invalid_spec_dag(dag_id: str, failure: SpecFailure):
    """A paused, unscheduled DAG whose docs carry the spec's problems and whose one task fails with them."""
    from airflow.sdk import DAG

    from tmpipe.operators.invalid_spec import InvalidSpecOperator

    problems = "\n".join(f"    {line}" for line in failure.lines)
    with DAG(
        dag_id,
        schedule=None,
        is_paused_upon_creation=True,
        tags=["tmpipe-invalid-spec"],
        description=f"spec {failure.path.name} does not load: {failure.lines[0] if failure.lines else ''}"[:500],
        doc_md=f"**The spec `{failure.path}` does not load**, so this placeholder stands in for its DAG "
               f"and fails when triggered. Fix the spec (`tmpipe validate {failure.path}`):\n\n{problems}\n",
    ) as dag:
        InvalidSpecOperator(task_id="invalid_spec", problems=failure.lines, retries=0)
    return dag
