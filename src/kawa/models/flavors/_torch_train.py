"""Training kawa's sequence CNN with PyTorch on the CPU; imported only when a SequenceCNN is fitted.

Deterministic: the seed fixes the initial weights, dropout and the order of mini-batches, and PyTorch's
deterministic algorithms are on while training. The caller's random state, thread count and
determinism setting are restored afterwards, so fitting changes nothing else in the process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from kawa.models.flavors._convnet import Architecture


class SequenceNet(nn.Module):
    """The network of `_convnet.py` as a PyTorch module (same layer names, so the same weights)."""

    def __init__(self, arch: Architecture, dropout: float = 0.0) -> None:
        super().__init__()
        self.arch = arch
        self.branches = nn.ModuleList(_Branch(arch, s.vocabulary) for s in arch.sequences)
        self.hidden = nn.Linear(arch.inputs, arch.hidden)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(arch.hidden, arch.outputs)

    def forward(self, ids: list[torch.Tensor], dense: torch.Tensor) -> torch.Tensor:
        parts = [branch(x) for branch, x in zip(self.branches, ids, strict=True)]
        if dense.shape[1]:
            parts.append(dense)
        hidden = torch.relu(self.hidden(torch.cat(parts, dim=1)))
        return self.output(self.dropout(hidden))  # type: ignore[no-any-return]


class _Branch(nn.Module):
    """Token embeddings -> 1-D convolution (padded on both sides) -> ReLU -> max over positions."""

    def __init__(self, arch: Architecture, vocabulary: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, arch.embedding_dim, padding_idx=0)
        self.conv = nn.Conv1d(
            arch.embedding_dim, arch.channels, arch.kernel_size, padding=arch.kernel_size - 1
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(self.embedding(ids).transpose(1, 2)))
        return h.amax(dim=2)


def split(arch: Architecture, X: np.ndarray) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The token-id tensors of each sequence and the numeric features of feature matrix `X`."""
    ids = [torch.from_numpy(X[:, s.offset : s.offset + s.length].astype(np.int64)) for s in arch.sequences]
    dense = torch.from_numpy(np.ascontiguousarray(X[:, list(arch.dense)], dtype=np.float32))
    return ids, dense


def train(
    arch: Architecture, X: np.ndarray, y: np.ndarray, *, task: str, settings: Mapping[str, Any]
) -> tuple[dict[str, np.ndarray], list[float]]:
    """Fit the network on `X` (token ids and numeric features) and `y` (class numbers, or values
    already standardised); returns the weights as float32 arrays and the mean loss of each epoch."""
    old_threads = torch.get_num_threads()
    old_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(int(settings["threads"]))
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(settings["seed"]))
            return _train(arch, X, y, task=task, settings=settings)
    finally:
        torch.use_deterministic_algorithms(old_deterministic)
        torch.set_num_threads(old_threads)


def _train(
    arch: Architecture, X: np.ndarray, y: np.ndarray, *, task: str, settings: Mapping[str, Any]
) -> tuple[dict[str, np.ndarray], list[float]]:
    net = SequenceNet(arch, dropout=float(settings["dropout"]))
    optimiser = torch.optim.Adam(
        net.parameters(), lr=float(settings["learning_rate"]), weight_decay=float(settings["weight_decay"])
    )
    ids, dense = split(arch, X)
    if task == "classification" and arch.outputs > 1:
        target = torch.from_numpy(y.astype(np.int64))
        loss_of: Any = nn.functional.cross_entropy
    else:
        target = torch.from_numpy(y.astype(np.float32)).view(-1, 1)
        loss_of = (
            nn.functional.binary_cross_entropy_with_logits
            if task == "classification"
            else nn.functional.mse_loss
        )
    order = torch.Generator().manual_seed(int(settings["seed"]))
    batch = int(settings["batch_size"])
    losses: list[float] = []
    net.train()
    for _ in range(int(settings["epochs"])):
        total = 0.0
        for rows in torch.randperm(len(y), generator=order).split(batch):
            optimiser.zero_grad()
            loss = loss_of(net([i[rows] for i in ids], dense[rows]), target[rows])
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(rows)
        losses.append(total / len(y))
    net.eval()
    weights = {name: t.detach().numpy().astype(np.float32, copy=True) for name, t in net.state_dict().items()}
    return weights, losses


def load_module(arch: Architecture, weights: Mapping[str, np.ndarray]) -> SequenceNet:
    """A PyTorch module holding `weights`, e.g. to check the numpy forward pass or export to ONNX."""
    net = SequenceNet(arch)
    net.load_state_dict({name: torch.from_numpy(np.array(w)) for name, w in weights.items()})
    return net.eval()
