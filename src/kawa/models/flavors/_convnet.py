"""The forward pass of kawa's sequence CNN in numpy: what serves a trained network, with no PyTorch.

The network (trained by `_torch_train.py`, same layer names): per sequence column, token embeddings
(id 0 pads and embeds to zeros) -> a 1-D convolution padded by kernel_size - 1 on both sides (so a
filter also sees a token at the very start or end of the list) -> ReLU -> max over positions; the
pooled channels of every sequence and the numeric features -> a hidden ReLU layer -> the output layer.

Embedding then convolution is linear in the one-hot tokens, so both fold into one table per kernel tap
(`tables[k][token]` = that token's contribution at tap k): a row costs a gather and a sum, not a matrix
product per position. Computed in float64 from the float32 weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from kawa.models.errors import BundleError

# Rows per chunk in batch prediction: keeps the gathered (rows, positions, taps, channels) block
# near this many bytes however long the table is.
_CHUNK_BYTES = 32 << 20


class SequenceInput(NamedTuple):
    """Where one sequence's token ids sit in the feature vector, and how many ids there are."""

    offset: int
    length: int
    vocabulary: int


class Architecture(NamedTuple):
    """The shape of the network, stored as JSON in bundle.json beside the weight arrays."""

    sequences: tuple[SequenceInput, ...]
    dense: tuple[int, ...]  # positions of the numeric features in the feature vector
    embedding_dim: int
    channels: int
    kernel_size: int
    hidden: int
    outputs: int

    @property
    def inputs(self) -> int:
        """Width of the hidden layer's input: pooled channels of every sequence, then numeric features."""
        return self.channels * len(self.sequences) + len(self.dense)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every weight array's name (as in the PyTorch module's state_dict) and shape."""
        out: dict[str, tuple[int, ...]] = {}
        for i, s in enumerate(self.sequences):
            out[f"branches.{i}.embedding.weight"] = (s.vocabulary, self.embedding_dim)
            out[f"branches.{i}.conv.weight"] = (self.channels, self.embedding_dim, self.kernel_size)
            out[f"branches.{i}.conv.bias"] = (self.channels,)
        out["hidden.weight"] = (self.hidden, self.inputs)
        out["hidden.bias"] = (self.hidden,)
        out["output.weight"] = (self.outputs, self.hidden)
        out["output.bias"] = (self.outputs,)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            **self._asdict(),
            "sequences": [s._asdict() for s in self.sequences],
            "dense": list(self.dense),
        }

    @classmethod
    def from_json(cls, data: Any) -> Architecture:
        try:
            arch = cls(
                sequences=tuple(SequenceInput(**s) for s in data["sequences"]),
                dense=tuple(data["dense"]),
                embedding_dim=data["embedding_dim"],
                channels=data["channels"],
                kernel_size=data["kernel_size"],
                hidden=data["hidden"],
                outputs=data["outputs"],
            )
        except (KeyError, TypeError) as exc:
            raise BundleError(
                f"malformed network architecture in bundle.json ({exc}): {data!r:.200}"
            ) from None
        numbers = [*arch.dense, *(v for s in arch.sequences for v in s)]
        numbers += [arch.embedding_dim, arch.channels, arch.kernel_size, arch.hidden, arch.outputs]
        if not all(type(v) is int and v >= 0 for v in numbers) or min(numbers[-5:]) < 1:
            raise BundleError(f"malformed network architecture in bundle.json: {data!r:.200}")
        return arch


class ConvNet:
    """A trained sequence CNN: its architecture and weights, predicting raw outputs (logits or values)."""

    def __init__(self, arch: Architecture, weights: Mapping[str, np.ndarray]) -> None:
        shapes = arch.shapes()
        if set(weights) != set(shapes):
            raise BundleError(
                f"the network's weights are {sorted(weights)}; its architecture needs {sorted(shapes)}"
            )
        for name, shape in shapes.items():
            if weights[name].shape != shape:
                raise BundleError(f"weight {name!r} has shape {weights[name].shape}; expected {shape}")
            if not np.isfinite(weights[name]).all():
                raise BundleError(f"weight {name!r} holds NaN or infinite values")
        self.arch = arch
        self.weights = {name: np.asarray(weights[name]) for name in shapes}
        k = arch.kernel_size
        self._tables: list[np.ndarray] = []
        for i, s in enumerate(arch.sequences):
            embedding = self.weights[f"branches.{i}.embedding.weight"].astype(np.float64)
            if embedding[0].any():
                raise BundleError(f"embedding {i} gives the padding id 0 a non-zero vector; it must be zeros")
            kernel = self.weights[f"branches.{i}.conv.weight"].astype(np.float64)
            # (taps * vocabulary, channels): row k * vocabulary + token = the token's term at tap k.
            self._tables.append(np.einsum("vd,cdk->kvc", embedding, kernel).reshape(k * s.vocabulary, -1))
        self._conv_bias = [
            self.weights[f"branches.{i}.conv.bias"].astype(np.float64) for i in range(len(arch.sequences))
        ]
        self._hidden_t = np.ascontiguousarray(self.weights["hidden.weight"].astype(np.float64).T)
        self._hidden_b = self.weights["hidden.bias"].astype(np.float64)
        self._output_t = np.ascontiguousarray(self.weights["output.weight"].astype(np.float64).T)
        self._output_b = self.weights["output.bias"].astype(np.float64)
        self._dense = np.asarray(arch.dense, dtype=np.intp)
        # Output position p of a full convolution reads padded positions p .. p + k - 1.
        self._windows = []
        for s in arch.sequences:
            positions = s.length + k - 1
            window = np.arange(positions, dtype=np.intp)[:, None] + np.arange(k, dtype=np.intp)[None, :]
            self._windows.append((window, np.arange(k, dtype=np.intp)[None, :] * s.vocabulary))
        per_row = max(
            [(s.length + k - 1) * k * arch.channels * 8 for s in arch.sequences] + [arch.inputs * 8, 1]
        )
        self._chunk = max(1, _CHUNK_BYTES // per_row)

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Raw outputs (rows x outputs) for feature matrix `X` (token ids and numeric features)."""
        if len(X) <= self._chunk:
            return self._forward(X)
        return np.concatenate([self._forward(X[i : i + self._chunk]) for i in range(0, len(X), self._chunk)])

    def forward_one(self, x: np.ndarray) -> np.ndarray:
        """Raw outputs for one feature vector: `forward`'s arithmetic without its batch bookkeeping."""
        k = self.arch.kernel_size
        parts = []
        for s, table, bias, (window, taps) in zip(
            self.arch.sequences, self._tables, self._conv_bias, self._windows, strict=True
        ):
            ids = np.zeros(s.length + 2 * (k - 1), dtype=np.intp)
            ids[k - 1 : k - 1 + s.length] = x[s.offset : s.offset + s.length]
            pooled = table[ids[window] + taps].sum(axis=1).max(axis=0) + bias
            parts.append(np.maximum(pooled, 0.0, out=pooled))
        if len(self._dense):
            parts.append(x[self._dense])
        features = parts[0] if len(parts) == 1 else np.concatenate(parts)
        hidden = features @ self._hidden_t + self._hidden_b
        np.maximum(hidden, 0.0, out=hidden)
        return hidden @ self._output_t + self._output_b  # type: ignore[no-any-return]

    def _forward(self, X: np.ndarray) -> np.ndarray:
        k = self.arch.kernel_size
        parts = []
        for s, table, bias, (window, taps) in zip(
            self.arch.sequences, self._tables, self._conv_bias, self._windows, strict=True
        ):
            ids = np.zeros((len(X), s.length + 2 * (k - 1)), dtype=np.intp)
            ids[:, k - 1 : k - 1 + s.length] = X[:, s.offset : s.offset + s.length]
            if len(ids) and (ids.min() < 0 or ids.max() >= s.vocabulary):
                raise ValueError(f"token ids outside 0..{s.vocabulary - 1}; the feature matrix does not fit")
            pooled = table[ids[:, window] + taps].sum(axis=2).max(axis=1) + bias  # (rows, channels)
            parts.append(np.maximum(pooled, 0.0, out=pooled))  # ReLU after the max: same, and cheaper
        if len(self._dense):
            parts.append(X[:, self._dense])
        features = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        hidden = features @ self._hidden_t + self._hidden_b
        np.maximum(hidden, 0.0, out=hidden)
        return hidden @ self._output_t + self._output_b  # type: ignore[no-any-return]


def architecture(
    sequences: Sequence[tuple[int, int, int]], width: int, settings: Mapping[str, int], outputs: int
) -> Architecture:
    """The architecture for a feature vector of `width` slots whose `sequences` hold token ids."""
    taken = {i for offset, length, _ in sequences for i in range(offset, offset + length)}
    return Architecture(
        sequences=tuple(SequenceInput(o, n, v) for o, n, v in sequences),
        dense=tuple(i for i in range(width) if i not in taken),
        embedding_dim=settings["embedding_dim"],
        channels=settings["channels"],
        kernel_size=settings["kernel_size"],
        hidden=settings["hidden"],
        outputs=outputs,
    )
