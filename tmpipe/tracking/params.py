"""Turn the resolved config into MLflow params and a provenance document (pure helpers)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tmpipe.redaction import is_secret_key, redact_secret_keys, redact_url_credentials


# MLflow limits (mlflow.utils.validation); copied so this module stays import-light.
MAX_PARAM_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _as_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return redact_url_credentials(text)


def loggable_params(config: Mapping[str, Any]) -> dict[str, str]:
    """Flattened, secret-free params with MLflow-sized keys and values."""
    params: dict[str, str] = {}
    for key, value in flatten(config).items():
        if is_secret_key(key) or len(key) > MAX_PARAM_KEY_LENGTH:
            continue
        params[key] = _as_text(value)[:MAX_PARAM_VALUE_LENGTH]
    return params


def _provenance_of(dotted_key: str, provenance: Mapping[str, Any]) -> Any:
    """Exact key, else the closest parent key the resolver recorded (whole section set)."""
    key = dotted_key
    while True:
        if key in provenance:
            return provenance[key]
        if "." not in key:
            return None
        key = key.rsplit(".", 1)[0]


def provenance_document(config: Mapping[str, Any], provenance: Mapping[str, Any]) -> dict:
    """``{resolved: <nested config>, keys: {dotted: {value, set_by}}}``, secrets redacted."""
    clean = redact_secret_keys(config)
    return {
        "resolved": clean,
        "keys": {
            key: {"value": value, "set_by": _provenance_of(key, provenance)}
            for key, value in flatten(clean).items()
        },
    }
