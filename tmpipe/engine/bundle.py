"""Model bundle: the selected network's weights plus everything needed to rebuild observations.

Format 2 stores the weights as NumPy arrays (``model.npz``, torch's parameter names). Format 1
bundles (torch ``model.pt``, written before the network moved to NumPy) still load where the
``torch`` extra is installed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tmpipe.engine.features import FEATURES
from tmpipe.errors import EngineError

if TYPE_CHECKING:
    from tmpipe.engine.network import QNetwork

WEIGHTS_FILE = "model.npz"
TORCH_WEIGHTS_FILE = "model.pt"  # format 1
METADATA_FILE = "bundle.json"
BUNDLE_FORMAT = 2


@dataclass(frozen=True)
class Bundle:
    network: QNetwork
    metadata: dict


def save_bundle(model_dir: Path, network, metadata: dict) -> Path:
    """Write weights and metadata; metadata must carry the keys ``load_bundle`` relies on."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(model_dir / WEIGHTS_FILE, "wb") as weights:
        np.savez(weights, **network.state_dict())
    full = {"format": BUNDLE_FORMAT, "features": list(FEATURES), "numpy_version": np.__version__, **metadata}
    (model_dir / METADATA_FILE).write_text(json.dumps(full, indent=2, sort_keys=True), encoding="utf-8")
    return model_dir


def load_bundle(model_dir: Path) -> Bundle:
    from tmpipe.engine.network import QNetwork

    model_dir = Path(model_dir)
    meta_path = model_dir / METADATA_FILE
    if not meta_path.exists():
        raise EngineError(f"{model_dir}: not a model bundle (needs {METADATA_FILE} and {WEIGHTS_FILE})")
    metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    bundle_format = metadata.get("format")
    if bundle_format not in (1, BUNDLE_FORMAT):
        raise EngineError(f"{meta_path}: bundle format {bundle_format!r}, expected {BUNDLE_FORMAT} (or 1)")
    weights_path = model_dir / (TORCH_WEIGHTS_FILE if bundle_format == 1 else WEIGHTS_FILE)
    if not weights_path.exists():
        raise EngineError(f"{model_dir}: not a model bundle (needs {METADATA_FILE} and {weights_path.name})")
    if metadata["features"] != FEATURES:
        raise EngineError(f"{meta_path}: features {metadata['features']} differ from this engine's {FEATURES}")
    network = QNetwork(metadata["input_size"], metadata["hidden_size"], len(metadata["actions"]))
    if bundle_format == 1:
        try:
            from tmpipe.engine.torch_network import load_torch_weights
        except ImportError:
            raise EngineError(f"{weights_path}: a format-1 (torch) bundle; reading it needs the torch extra: pip install 'tmpipe[torch]'") from None
        load_torch_weights(weights_path, network)
    else:
        with np.load(weights_path) as weights:
            network.load_state_dict(dict(weights))
    return Bundle(network, metadata)
