"""Hand-written twin of the generated DAG, the yardstick of benchmarks/parse.py.

Same operators, params, default_args and mapped task group as ``tmpipe render`` gives for the
shipped spec, written as a plain Airflow DAG file: no spec is loaded and no dag-factory.
"""

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param, task_group

from tmpipe.operators.chain import build_symbol_chain
from tmpipe.operators.summary import SummarizeOperator
from tmpipe.operators.symbols import ResolveSymbolsOperator

SPEC_PATH = str((Path(__file__).parent.parent.parent / "dag_specs" / "trademaster_autogen_pipeline_workflow.yaml").absolute())

with DAG(
    dag_id="trademaster_autogen_pipeline_workflow",
    description="TradeMaster training, backtest and inference, AutoGen review, MLflow and WebUI persistence, per symbol.",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=10,
    tags=["trademaster", "autogen", "mlflow"],
    render_template_as_native_obj=True,
    doc_md="Hand-written twin of the generated DAG.",
    default_args={
        "owner": "quant-research",
        "retries": 1,
        "retry_delay": timedelta(seconds=60),
        "execution_timeout": timedelta(minutes=120),
    },
    params={
        "mode": Param("both", type="string", description="Run mode.", enum=["both", "train_backtest", "inference"]),
        "symbol": Param(None, type=["null", "string"], description="Run exactly this symbol."),
        "symbols": Param(None, type=["null", "array"], description="Run exactly these symbols."),
        "max_symbols": Param(None, type=["null", "integer"], description="At most this many symbols."),
        "config": Param({}, type="object", description="Stage settings for this run."),
    },
) as dag:
    resolve = ResolveSymbolsOperator(task_id="resolve_symbols", spec_path=SPEC_PATH)
    chain = task_group(group_id="symbol_chain")(build_symbol_chain).partial(spec_path=SPEC_PATH).expand(symbol=resolve.output)
    summarize = SummarizeOperator(
        task_id="summarize", spec_path=SPEC_PATH, chain_group_id="symbol_chain", trigger_rule="all_done", retries=0
    )
    resolve >> chain >> summarize
