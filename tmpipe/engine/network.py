"""The Q-network in NumPy: a two-layer ReLU trunk, a dueling Q head and a volatility head.

Why NumPy and not torch: the learner already trains it in NumPy (learner.py), so torch only
initialised, evaluated and saved it, and cost the default install 750 MB (several GB from the
stock index, which resolves torch to its CUDA build). The torch module stays available as the
``torch`` extra (torch_network.py); tests/engine/test_network.py checks both give the same
Q-values on equal weights. Parameters live in one flat float32 vector (learner.FlatLayout) and
are named as torch names them, so the two exchange weights and a bundle is a plain .npz.
"""

from __future__ import annotations

import numpy as np

from tmpipe.engine.learner import FlatLayout, dueling_matrix, forward


class QNetwork:
    """Shared trunk -> dueling Q-values per action, plus a volatility prediction."""

    def __init__(self, input_size: int, hidden_size: int, n_actions: int, rng: np.random.Generator | None = None):
        self.input_size, self.hidden_size, self.n_actions = input_size, hidden_size, n_actions
        self.layout = FlatLayout(input_size, hidden_size, n_actions)
        self.flat = np.zeros(self.layout.size, dtype=np.float32)
        self.params = self.layout.views(self.flat)
        self._dueling = dueling_matrix(n_actions)
        if rng is not None:
            self._initialise(rng)

    def _initialise(self, rng: np.random.Generator) -> None:
        """torch's nn.Linear default: weights and biases uniform in +-1/sqrt(fan_in)."""
        p = self.params
        for weight, bias, fan_in in (("w1", "b1", self.input_size), ("w2", "b2", self.hidden_size), ("wh", "bh", self.hidden_size)):
            bound = 1.0 / np.sqrt(fan_in)
            p[weight][:] = rng.uniform(-bound, bound, p[weight].shape)
            p[bias][:] = rng.uniform(-bound, bound, p[bias].shape)

    def _named(self) -> dict[str, np.ndarray]:
        """Views of the parameters under torch's state_dict names."""
        p, n = self.params, self.n_actions
        return {
            "trunk.0.weight": p["w1"], "trunk.0.bias": p["b1"], "trunk.2.weight": p["w2"], "trunk.2.bias": p["b2"],
            "value.weight": p["wh"][:1], "value.bias": p["bh"][:1],
            "advantage.weight": p["wh"][1 : 1 + n], "advantage.bias": p["bh"][1 : 1 + n],
            "volatility.weight": p["wh"][1 + n :], "volatility.bias": p["bh"][1 + n :],
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: view.copy() for name, view in self._named().items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        views = self._named()
        if set(state) != set(views):
            raise ValueError(f"state dict keys {sorted(state)} differ from {sorted(views)}")
        for name, view in views.items():
            view[:] = np.asarray(state[name], dtype=np.float32).reshape(view.shape)

    def __call__(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heads = forward(self.params, np.asarray(obs, dtype=np.float32))[-1]
        return heads @ self._dueling, heads[:, -1]


def q_table(network: QNetwork, windows: np.ndarray, position_features: np.ndarray) -> np.ndarray:
    """Q-values (windows, positions, actions) as float64, for every window in every position."""
    n, p = len(windows), len(position_features)
    obs = np.concatenate([np.repeat(np.asarray(windows, dtype=np.float32), p, axis=0),
                          np.tile(np.asarray(position_features, dtype=np.float32), n)[:, None]], axis=1)
    return network(obs)[0].reshape(n, p, -1).astype(np.float64)
