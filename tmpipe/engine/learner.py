"""The double-DQN update of QNetwork in NumPy: forward, backward, gradient clipping, Adam, soft target.

Why not torch autograd: with 64 hidden units and batch 64 one torch update is ~60 dispatcher
calls plus the autograd graph, ~1.5 ms of overhead for microseconds of arithmetic. The same
arithmetic as a few dozen NumPy calls on one flat float32 parameter vector (so Adam, clipping
and the target update are one array op each) costs ~0.15 ms. The network it trains is the NumPy
QNetwork (network.py), whose flat vector has this module's layout; ``write_to`` copies the
learner's weights back for evaluation and the bundle. tests/engine/test_learner.py checks
gradients and Adam against torch autograd (the ``torch`` extra).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tmpipe.config.sections import TrademasterConfig

ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam defaults
ADAM_EPS = 1e-8


class FlatLayout:
    """Where each tensor of the network lives in one flat vector: trunk layers, then the three
    heads (value, advantage, volatility) stacked as one (2 + actions, hidden) matrix so a
    single matmul computes them all."""

    def __init__(self, input_size: int, hidden_size: int, n_actions: int):
        heads = n_actions + 2
        self.shapes = {"w1": (hidden_size, input_size), "b1": (hidden_size,),
                       "w2": (hidden_size, hidden_size), "b2": (hidden_size,),
                       "wh": (heads, hidden_size), "bh": (heads,)}
        self.size = sum(int(np.prod(s)) for s in self.shapes.values())

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        out, offset = {}, 0
        for name, shape in self.shapes.items():
            n = int(np.prod(shape))
            out[name] = flat[offset : offset + n].reshape(shape)
            offset += n
        return out


def forward(p: dict[str, np.ndarray], x: np.ndarray):
    """Pre-activations, activations and head outputs: (z1, h1, z2, h2, heads)."""
    z1 = x @ p["w1"].T
    z1 += p["b1"]
    h1 = np.maximum(z1, 0.0)
    z2 = h1 @ p["w2"].T
    z2 += p["b2"]
    h2 = np.maximum(z2, 0.0)
    heads = h2 @ p["wh"].T
    heads += p["bh"]
    return z1, h1, z2, h2, heads


def dueling_matrix(n_actions: int) -> np.ndarray:
    """(heads, actions) matrix C with heads @ C = value + advantage - mean advantage.

    The dueling combination is linear, so forward is one matmul and backward is d_q @ C.T.
    """
    c = np.zeros((n_actions + 2, n_actions), dtype=np.float32)
    c[0] = 1.0
    c[1:-1] = np.eye(n_actions, dtype=np.float32) - 1.0 / n_actions
    return c


class DoubleDQNLearner:
    """Online and target parameters, Adam state, and the update; mirrors the torch recipe
    (smooth L1 TD loss + weighted masked MSE volatility loss, clip_grad_norm_, Adam, lerp target)."""

    def __init__(self, network, obs_table: np.ndarray, vol_target: np.ndarray, vol_mask: np.ndarray,
                 hyper: TrademasterConfig, reward_scale: float, grad_clip_norm: float):
        n_actions = network.n_actions
        self.layout = network.layout
        self.online = network.flat.copy()
        self.target = self.online.copy()
        self.grad = np.zeros_like(self.online)
        self.exp_avg, self.exp_avg_sq, self.scratch = (np.zeros_like(self.online) for _ in range(3))
        self.p, self.t, self.g = (self.layout.views(v) for v in (self.online, self.target, self.grad))
        self.obs_table = obs_table  # (windows, positions, input_size)
        self.vol_target = vol_target.astype(np.float32)
        self.vol_mask = vol_mask.astype(np.float32)
        self.n_actions = n_actions
        self.dueling = dueling_matrix(n_actions)
        self.lr, self.gamma = float(hyper.learning_rate), float(hyper.gamma)
        self.tau, self.aux_weight = float(hyper.target_update_tau), float(hyper.volatility_aux_weight)
        self.reward_scale, self.grad_clip_norm = reward_scale, grad_clip_norm
        self.steps = 0

    def greedy(self, window: np.ndarray, position: np.ndarray) -> np.ndarray:
        heads = forward(self.p, self.obs_table[window, position])[-1]
        return (heads @ self.dueling).argmax(axis=1)

    def learn(self, window, position, action, reward, ruined) -> float:
        """One update on a sampled batch; returns the total loss before the step."""
        loss = self.gradient(window, position, action, reward, ruined)
        self.clip_and_step()
        return loss

    def gradient(self, window, position, action, reward, ruined) -> float:
        """The batch's loss; its gradient w.r.t. the online parameters goes to ``self.grad``."""
        b = len(window)
        rows = np.arange(b)
        # One online pass over states and next states (the chosen action is the next position).
        x = self.obs_table[np.concatenate([window, window + 1]), np.concatenate([position, action])]
        z1, h1, z2, h2, heads = forward(self.p, x)
        q_all = heads @ self.dueling
        next_action = q_all[b:].argmax(axis=1)
        next_q = (forward(self.t, x[b:])[-1] @ self.dueling)[rows, next_action]
        td_target = reward * self.reward_scale + self.gamma * (1.0 - ruined) * next_q
        error = q_all[rows, action] - td_target
        abs_error = np.abs(error)
        td_loss = np.where(abs_error < 1.0, 0.5 * error * error, abs_error - 0.5).mean()
        mask = self.vol_mask[window]
        mask_total = max(float(mask.sum()), 1.0)
        vol_error = heads[:b, -1] - self.vol_target[window]
        aux_loss = float((vol_error * vol_error * mask).sum()) / mask_total
        # Backward, rows of the current states only.
        d_q = np.clip(error, -1.0, 1.0) / b
        d_q_all = np.zeros((b, self.n_actions), dtype=np.float32)
        d_q_all[rows, action] = d_q
        d_heads = d_q_all @ self.dueling.T  # the volatility column of C is 0, so it starts at 0
        d_heads[:, -1] = vol_error * mask * (2.0 * self.aux_weight / mask_total)
        p, g = self.p, self.g
        np.matmul(d_heads.T, h2[:b], out=g["wh"])
        np.sum(d_heads, axis=0, out=g["bh"])
        d_z2 = d_heads @ p["wh"]
        d_z2 *= z2[:b] > 0
        np.matmul(d_z2.T, h1[:b], out=g["w2"])
        np.sum(d_z2, axis=0, out=g["b2"])
        d_z1 = d_z2 @ p["w2"]
        d_z1 *= z1[:b] > 0
        np.matmul(d_z1.T, x[:b], out=g["w1"])
        np.sum(d_z1, axis=0, out=g["b1"])
        return float(td_loss) + self.aux_weight * aux_loss

    def clip_and_step(self) -> None:
        """clip_grad_norm_, one Adam step, then the soft target update (torch's formulas)."""
        grad, scratch = self.grad, self.scratch
        coef = self.grad_clip_norm / (float(np.sqrt(grad @ grad)) + 1e-6)
        if coef < 1.0:
            grad *= coef
        beta1, beta2 = ADAM_BETAS
        self.steps += 1
        self.exp_avg *= beta1
        self.exp_avg += (1.0 - beta1) * grad
        self.exp_avg_sq *= beta2
        np.multiply(grad, grad, out=scratch)
        scratch *= 1.0 - beta2
        self.exp_avg_sq += scratch
        step_size = self.lr / (1.0 - beta1**self.steps)
        np.sqrt(self.exp_avg_sq, out=scratch)
        scratch *= 1.0 / math.sqrt(1.0 - beta2**self.steps)
        scratch += ADAM_EPS
        np.divide(self.exp_avg, scratch, out=scratch)
        scratch *= step_size
        self.online -= scratch
        np.subtract(self.online, self.target, out=scratch)
        scratch *= self.tau
        self.target += scratch

    def write_to(self, network) -> None:
        """Copy the online weights into ``network`` (a QNetwork of the same layout)."""
        network.flat[:] = self.online
