"""Where the engine bundle sits inside the logged pyfunc model (read by the registry without MLflow)."""

from __future__ import annotations

from pathlib import Path

BUNDLE_ARTIFACT = "bundle"
BUNDLE_SUBDIR = Path("artifacts") / BUNDLE_ARTIFACT
