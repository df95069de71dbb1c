"""DeepScalper-style double DQN: dueling Q head, auxiliary volatility head, soft target updates.

torch is imported here only; this module is loaded when training or inference runs.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

# Rewards are log growth per bar (~1e-2); Q-learning is better conditioned in percent units.
REWARD_SCALE = 100.0
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
    """Online and target networks over observations = window features + position feature."""

    def __init__(self, windows: np.ndarray, position_features: np.ndarray, hyper: dict):
        self.windows = torch.from_numpy(windows)
        self.position_features = torch.tensor(position_features, dtype=torch.float32)
        n_actions = len(position_features)
        self.online = QNetwork(windows.shape[1] + 1, hyper["hidden_size"], n_actions)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=hyper["learning_rate"])
        self.gamma = float(hyper["gamma"])
        self.tau = float(hyper["target_update_tau"])
        self.aux_weight = float(hyper["volatility_aux_weight"])

    def observations(self, window: np.ndarray, position: np.ndarray) -> torch.Tensor:
        window_t = torch.as_tensor(window)
        return torch.cat([self.windows[window_t], self.position_features[torch.as_tensor(position)].unsqueeze(1)], 1)

    @torch.no_grad()
    def greedy(self, window: np.ndarray, position: np.ndarray) -> np.ndarray:
        q, _ = self.online(self.observations(window, position))
        return q.argmax(dim=1).numpy()

    def learn(self, buffer: ReplayBuffer, batch: np.ndarray, vol_target: torch.Tensor, vol_mask: torch.Tensor) -> float:
        """One double-DQN step with the auxiliary volatility loss; returns the total loss."""
        window, position, action = buffer.window[batch], buffer.position[batch], buffer.action[batch]
        reward = torch.from_numpy(buffer.reward[batch]) * REWARD_SCALE
        alive = 1.0 - torch.from_numpy(buffer.ruined[batch])
        obs = self.observations(window, position)
        next_obs = self.observations(window + 1, action)  # the chosen action is the next position
        q, vol_pred = self.online(obs)
        q_taken = q.gather(1, torch.from_numpy(action).unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            next_action = self.online(next_obs)[0].argmax(dim=1, keepdim=True)
            next_q = self.target(next_obs)[0].gather(1, next_action).squeeze(1)
            td_target = reward + self.gamma * alive * next_q
        td_loss = nn.functional.smooth_l1_loss(q_taken, td_target)
        window_t = torch.from_numpy(window)
        mask = vol_mask[window_t]
        aux_loss = ((vol_pred - vol_target[window_t]) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)
        loss = td_loss + self.aux_weight * aux_loss
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.online.parameters(), GRAD_CLIP_NORM)
        self.optimizer.step()
        with torch.no_grad():
            for target, online in zip(self.target.parameters(), self.online.parameters()):
                target.lerp_(online, self.tau)
        return float(loss.detach())

    @torch.no_grad()
    def q_table(self, windows: torch.Tensor) -> np.ndarray:
        """Q-values of every window for every possible current position: (windows, positions, actions)."""
        return q_table(self.online, windows, self.position_features)


@torch.no_grad()
def q_table(network: QNetwork, windows: torch.Tensor, position_features: torch.Tensor) -> np.ndarray:
    n, p = len(windows), len(position_features)
    obs = torch.cat([windows.repeat_interleave(p, 0), position_features.repeat(n).unsqueeze(1)], 1)
    return network(obs)[0].reshape(n, p, -1).double().numpy()
