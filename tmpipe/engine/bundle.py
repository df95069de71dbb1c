"""Model bundle: the selected network's weights plus everything needed to rebuild observations."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tmpipe.engine.features import FEATURES
from tmpipe.errors import EngineError

WEIGHTS_FILE = "model.pt"
METADATA_FILE = "bundle.json"
BUNDLE_FORMAT = 1


@dataclass(frozen=True)
class Bundle:
    network: object  # QNetwork in eval mode
    metadata: dict


def save_bundle(model_dir: Path, network, metadata: dict) -> Path:
    """Write weights and metadata; metadata must carry the keys ``load_bundle`` relies on."""
    import torch

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), model_dir / WEIGHTS_FILE)
    full = {"format": BUNDLE_FORMAT, "features": list(FEATURES), "torch_version": torch.__version__, **metadata}
    (model_dir / METADATA_FILE).write_text(json.dumps(full, indent=2, sort_keys=True), encoding="utf-8")
    return model_dir


def load_bundle(model_dir: Path) -> Bundle:
    import torch

    from tmpipe.engine.agent import QNetwork

    model_dir = Path(model_dir)
    meta_path, weights_path = model_dir / METADATA_FILE, model_dir / WEIGHTS_FILE
    if not meta_path.exists() or not weights_path.exists():
        raise EngineError(f"{model_dir}: not a model bundle (needs {METADATA_FILE} and {WEIGHTS_FILE})")
    metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    if metadata.get("format") != BUNDLE_FORMAT:
        raise EngineError(f"{meta_path}: bundle format {metadata.get('format')!r}, expected {BUNDLE_FORMAT}")
    if metadata["features"] != FEATURES:
        raise EngineError(f"{meta_path}: features {metadata['features']} differ from this engine's {FEATURES}")
    network = QNetwork(metadata["input_size"], metadata["hidden_size"], len(metadata["actions"]))
    network.load_state_dict(torch.load(weights_path, weights_only=True))
    return Bundle(network.eval(), metadata)
