"""MLflow tracking: one run per (DAG run, symbol), stage logging, registry and promotion.

Importing this package never imports mlflow (Airflow parses DAGs that import operators
importing us); mlflow is imported inside the functions that talk to it.
"""

from tmpipe.tracking.run_identity import (
    RunRef,
    TrackingContext,
    embedded_tracking_uri,
    resolve_tracking_uri,
    run_url,
)
from tmpipe.tracking.registry import (
    PromotedModel,
    download_run_bundle,
    evaluate_gate,
    load_promoted_model,
    register_and_promote,
    registered_model_name,
)
from tmpipe.tracking.runs import (
    client_for,
    end_run,
    get_or_create_experiment,
    get_or_create_run,
    set_tags,
    stage_run,
)
from tmpipe.tracking.stage_logging import log_config, log_inference, log_review, log_train_backtest

__all__ = [
    "PromotedModel",
    "RunRef",
    "TrackingContext",
    "client_for",
    "download_run_bundle",
    "embedded_tracking_uri",
    "end_run",
    "evaluate_gate",
    "get_or_create_experiment",
    "get_or_create_run",
    "load_promoted_model",
    "log_config",
    "log_inference",
    "log_review",
    "log_train_backtest",
    "register_and_promote",
    "registered_model_name",
    "resolve_tracking_uri",
    "run_url",
    "set_tags",
    "stage_run",
]
