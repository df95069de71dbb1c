"""The NumPy Q-network against its torch twin (the ``torch`` extra) on equal weights, and its bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tmpipe.engine.bundle import METADATA_FILE, TORCH_WEIGHTS_FILE, load_bundle
from tmpipe.engine.network import QNetwork, q_table

torch = pytest.importorskip("torch")
from tmpipe.engine.torch_network import TorchQNetwork, from_torch, to_torch  # noqa: E402


def test_forward_matches_torch_on_equal_weights():
    network = QNetwork(111, 64, 3, np.random.default_rng(0))
    obs = np.random.default_rng(1).standard_normal((500, 111)).astype(np.float32)
    q, volatility = network(obs)
    with torch.no_grad():
        torch_q, torch_volatility = to_torch(network)(torch.from_numpy(obs))
    np.testing.assert_allclose(q, torch_q.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(volatility, torch_volatility.numpy(), rtol=1e-5, atol=1e-5)


def test_q_table_matches_torch_for_every_window_and_position():
    torch.manual_seed(4)
    module = TorchQNetwork(21, 16, 3)
    windows = np.random.default_rng(2).standard_normal((40, 20)).astype(np.float32)
    positions = np.array([-1.0, 0.0, 1.0], dtype=np.float32)
    table = q_table(from_torch(module), windows, positions)
    with torch.no_grad():
        for w in (0, 17, 39):
            for p in range(3):
                obs = torch.from_numpy(np.append(windows[w], positions[p])[None, :])
                np.testing.assert_allclose(table[w, p], module(obs)[0][0].double().numpy(), rtol=1e-5, atol=1e-6)


def test_initialisation_has_torchs_bounds_and_a_seed_fixes_it():
    first, again = (QNetwork(111, 64, 3, np.random.default_rng(7)) for _ in range(2))
    np.testing.assert_array_equal(first.flat, again.flat)
    state = first.state_dict()
    assert set(state) == set(TorchQNetwork(111, 64, 3).state_dict())
    assert np.abs(state["trunk.0.weight"]).max() <= 1 / np.sqrt(111)
    assert np.abs(state["trunk.2.weight"]).max() <= 1 / np.sqrt(64) and np.abs(state["trunk.0.weight"]).max() > 0.09


def test_a_format_1_torch_bundle_still_loads(trained, tmp_path):
    """Bundles written before the move to NumPy (torch model.pt) give the same network."""
    _, result, _ = trained
    bundle = load_bundle(result["model_dir"])
    meta = dict(bundle.metadata, format=1)
    (tmp_path / METADATA_FILE).write_text(json.dumps(meta))
    torch.save(to_torch(bundle.network).state_dict(), tmp_path / TORCH_WEIGHTS_FILE)
    np.testing.assert_array_equal(load_bundle(tmp_path).network.flat, bundle.network.flat)
