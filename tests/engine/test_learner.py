"""The NumPy learner against the torch autograd recipe it replaces (same loss, gradients, Adam, target).

Needs the ``torch`` extra.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from tmpipe.config.sections import TrademasterConfig  # noqa: E402
from tmpipe.engine.network import QNetwork  # noqa: E402
from tmpipe.engine.learner import DoubleDQNLearner  # noqa: E402
from tmpipe.engine.torch_network import TorchQNetwork, from_torch, to_torch  # noqa: E402

HYPER = {"learning_rate": 3e-3, "gamma": 0.99, "target_update_tau": 0.05, "volatility_aux_weight": 0.5}
REWARD_MULTIPLIER = 100.0


class TorchReference:
    """Double DQN with autograd and torch.optim.Adam: the update the learner must reproduce."""

    def __init__(self, network: TorchQNetwork, obs_table, vol_target, vol_mask, clip_norm: float):
        self.online, self.target = network, copy.deepcopy(network).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=HYPER["learning_rate"])
        self.obs_table, self.clip_norm = torch.from_numpy(obs_table), clip_norm
        self.vol_target, self.vol_mask = torch.tensor(vol_target, dtype=torch.float32), torch.tensor(vol_mask, dtype=torch.float32)

    def loss(self, window, position, action, reward, ruined) -> torch.Tensor:
        w, a = torch.from_numpy(window), torch.from_numpy(action)
        q, vol_pred = self.online(self.obs_table[w, torch.from_numpy(position)])
        next_obs = self.obs_table[w + 1, a]
        with torch.no_grad():
            next_action = self.online(next_obs)[0].argmax(dim=1, keepdim=True)
            next_q = self.target(next_obs)[0].gather(1, next_action).squeeze(1)
            td_target = torch.from_numpy(reward) * REWARD_MULTIPLIER + HYPER["gamma"] * (1 - torch.from_numpy(ruined)) * next_q
        td_loss = nn.functional.smooth_l1_loss(q.gather(1, a.unsqueeze(1)).squeeze(1), td_target)
        mask = self.vol_mask[w]
        aux = ((vol_pred - self.vol_target[w]) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)
        return td_loss + HYPER["volatility_aux_weight"] * aux

    def learn(self, *batch) -> float:
        loss = self.loss(*batch)
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.online.parameters(), self.clip_norm)
        self.optimizer.step()
        with torch.no_grad():
            for target, online in zip(self.target.parameters(), self.online.parameters()):
                target.lerp_(online, HYPER["target_update_tau"])
        return float(loss.detach())


def _setup(clip_norm: float, seed: int = 3):
    rng = np.random.default_rng(seed)
    windows, n_actions = 40, 3
    obs_table = rng.standard_normal((windows, n_actions, 9)).astype(np.float32)
    obs_table[:, :, -1] = np.array([-1.0, 0.0, 1.0], dtype=np.float32)
    vol_target, vol_mask = rng.random(windows), rng.random(windows) > 0.3
    torch.manual_seed(seed)
    network = TorchQNetwork(9, 16, n_actions)
    learner = DoubleDQNLearner(from_torch(network), obs_table, vol_target, vol_mask, TrademasterConfig.from_values(HYPER),
                               REWARD_MULTIPLIER, clip_norm)
    reference = TorchReference(copy.deepcopy(network), obs_table, vol_target, vol_mask, clip_norm)
    return rng, learner, reference


def _batch(rng, size: int = 32):
    window = rng.integers(0, 39, size)
    return (window, rng.integers(0, 3, size), rng.integers(0, 3, size),
            (rng.standard_normal(size) * 0.02).astype(np.float32), (rng.random(size) < 0.1).astype(np.float32))


def _torch_flat(network: TorchQNetwork, grads: bool = False) -> np.ndarray:
    """The module's parameters (or their .grad) in the learner's flat layout."""
    if not grads:
        return from_torch(network).flat
    shadow = copy.deepcopy(network)
    with torch.no_grad():
        for param, source in zip(shadow.parameters(), network.parameters()):
            param.copy_(source.grad)
    return from_torch(shadow).flat


def test_loss_and_gradient_match_autograd():
    rng, learner, reference = _setup(clip_norm=10.0)
    batch = _batch(rng)
    loss = learner.gradient(*batch)
    torch_loss = reference.loss(*batch)
    torch_loss.backward()
    assert loss == pytest.approx(float(torch_loss.detach()), rel=1e-5)
    np.testing.assert_allclose(learner.grad, _torch_flat(reference.online, grads=True), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("clip_norm", [10.0, 0.05])  # 0.05 clips every step
def test_updates_track_torch_adam_clipping_and_soft_target(clip_norm):
    rng, learner, reference = _setup(clip_norm)
    for _ in range(25):
        batch = _batch(rng)
        assert learner.learn(*batch) == pytest.approx(reference.learn(*batch), rel=1e-4, abs=1e-6)
    np.testing.assert_allclose(learner.online, _torch_flat(reference.online), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(learner.target, _torch_flat(reference.target), rtol=1e-3, atol=1e-5)
    assert not np.array_equal(learner.online, learner.target)


def test_write_to_round_trips_and_greedy_matches_the_torch_network():
    rng, learner, _ = _setup(clip_norm=10.0)
    for _ in range(5):
        learner.learn(*_batch(rng))
    network = QNetwork(9, 16, 3)
    learner.write_to(network)
    np.testing.assert_array_equal(network.flat, learner.online)
    window, position = np.arange(39), rng.integers(0, 3, 39)
    with torch.no_grad():
        q, _ = to_torch(network)(torch.from_numpy(learner.obs_table[window, position]))
    np.testing.assert_array_equal(learner.greedy(window, position), q.argmax(dim=1).numpy())
