"""The Q-network as a torch module (the ``torch`` extra), exchanging weights with the NumPy one.

The engine runs network.QNetwork in NumPy; this is the torch implementation it replaced, kept
for cross-checks (tests/engine/test_network.py, test_learner.py), for reading bundles written
before bundle format 2 (torch ``model.pt``), and for anyone who wants the model in torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tmpipe.engine.network import QNetwork


class TorchQNetwork(nn.Module):
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


def to_torch(network: QNetwork) -> TorchQNetwork:
    """A torch module with ``network``'s weights."""
    module = TorchQNetwork(network.input_size, network.hidden_size, network.n_actions)
    module.load_state_dict({name: torch.from_numpy(values) for name, values in network.state_dict().items()})
    return module.eval()


def from_torch(module: TorchQNetwork) -> QNetwork:
    """A NumPy network with ``module``'s weights."""
    first = module.trunk[0]
    assert isinstance(first, nn.Linear)  # the trunk opens with its input layer
    network = QNetwork(first.in_features, first.out_features, module.advantage.out_features)
    network.load_state_dict({name: t.detach().numpy() for name, t in module.state_dict().items()})
    return network


def load_torch_weights(path, network: QNetwork) -> None:
    """Read a torch ``state_dict`` file (bundle format 1) into ``network``."""
    state = torch.load(path, weights_only=True)
    network.load_state_dict({name: np.asarray(t.numpy()) for name, t in state.items()})
