"""DeepScalper-style double DQN: dueling Q head, auxiliary volatility head, soft target updates.

torch is imported here only; this module is loaded when training or inference runs. The
network is a torch module (initialisation, evaluation, bundles); its updates run in NumPy
(tmpipe/engine/learner.py), which is ~8x faster per step at this size.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

GRAD_CLIP_NORM = 10.0


class QNetwork(nn.Module):
    """Shared trunk -> dueling Q-values per action, plus a volatility prediction."""

    def __init__(self, input_size: int, hidden_size: int, n_actions: int):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(input_size, hidden_size), nn.ReLU(),
            nn.Linear(hidden_size, hidden_size), nn.ReLU(),
        )
        self.value = nn.Linear(hidden_size, 1)
        self.advantage = nn.Linear(hidden_size, n_actions)
        self.volatility = nn.Linear(hidden_size, 1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.trunk(obs)
        advantage = self.advantage(hidden)
        q = self.value(hidden) + advantage - advantage.mean(dim=1, keepdim=True)
        return q, self.volatility(hidden).squeeze(1)


class ReplayBuffer:
    """Circular buffer of transitions stored as indices: (window, position, action, reward, ruin).

    Observations are rebuilt from the precomputed window tensor, so a transition costs a few
    bytes whatever the lookback.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.window = np.zeros(capacity, dtype=np.int64)
        self.position = np.zeros(capacity, dtype=np.int64)
        self.action = np.zeros(capacity, dtype=np.int64)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.ruined = np.zeros(capacity, dtype=np.float32)
        self.size = 0
        self._next = 0

    def add(self, window, position, action, reward, ruined) -> None:
        for i in range(len(window)):  # a handful per step: one per parallel environment
            slot = self._next
            self.window[slot], self.position[slot], self.action[slot] = window[i], position[i], action[i]
            self.reward[slot], self.ruined[slot] = reward[i], ruined[i]
            self._next = (slot + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        return rng.integers(0, self.size, size=batch_size)


class DQNAgent:
    """The torch QNetwork (initialisation, evaluation, bundle) trained by the NumPy learner.

    Observations = window features + position feature, precomputed for every (window,
    position) pair so acting and sampling are one gather each.
    """

    def __init__(self, windows: np.ndarray, position_features: np.ndarray, hyper: dict,
                 vol_target: np.ndarray, vol_mask: np.ndarray, reward_multiplier: float):
        from tmpipe.engine.learner import DoubleDQNLearner

        n_actions = len(position_features)
        self.online = QNetwork(windows.shape[1] + 1, hyper["hidden_size"], n_actions)
        obs_table = np.concatenate([
            np.repeat(windows[:, None, :], n_actions, axis=1),
            np.broadcast_to(np.asarray(position_features, dtype=np.float32)[None, :, None], (len(windows), n_actions, 1)),
        ], axis=2)
        self.learner = DoubleDQNLearner(self.online, obs_table, vol_target, vol_mask, hyper, reward_multiplier, GRAD_CLIP_NORM)

    def greedy(self, window: np.ndarray, position: np.ndarray) -> np.ndarray:
        return self.learner.greedy(window, position)

    def learn(self, buffer: ReplayBuffer, batch: np.ndarray) -> float:
        """One double-DQN step with the auxiliary volatility loss; returns the total loss."""
        return self.learner.learn(buffer.window[batch], buffer.position[batch], buffer.action[batch],
                                  buffer.reward[batch], buffer.ruined[batch])

    def sync(self) -> QNetwork:
        """The torch network with the learner's current weights."""
        self.learner.write_to(self.online)
        return self.online


@torch.no_grad()
def q_table(network: QNetwork, windows: torch.Tensor, position_features: torch.Tensor) -> np.ndarray:
    n, p = len(windows), len(position_features)
    obs = torch.cat([windows.repeat_interleave(p, 0), position_features.repeat(n).unsqueeze(1)], 1)
    return network(obs)[0].reshape(n, p, -1).double().numpy()
