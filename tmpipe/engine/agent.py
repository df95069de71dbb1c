"""DeepScalper-style double DQN: dueling Q head, auxiliary volatility head, soft target updates.

All NumPy: the network (network.py) and its updates (learner.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tmpipe.engine.network import QNetwork

if TYPE_CHECKING:
    from tmpipe.config.sections import TrademasterConfig

GRAD_CLIP_NORM = 10.0
# The network's initial weights draw from a stream of their own, apart from the trainer's
# exploration stream (default_rng(seed)).
INIT_STREAM = 1


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
    """The QNetwork (evaluation, bundle) and the learner that trains it.

    Observations = window features + position feature, precomputed for every (window,
    position) pair so acting and sampling are one gather each.
    """

    def __init__(self, windows: np.ndarray, position_features: np.ndarray, hyper: TrademasterConfig,
                 vol_target: np.ndarray, vol_mask: np.ndarray, reward_multiplier: float):
        from tmpipe.engine.learner import DoubleDQNLearner

        n_actions = len(position_features)
        rng = np.random.default_rng([hyper.seed, INIT_STREAM])
        self.online = QNetwork(windows.shape[1] + 1, hyper.hidden_size, n_actions, rng)
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
        """The network with the learner's current weights."""
        self.learner.write_to(self.online)
        return self.online
