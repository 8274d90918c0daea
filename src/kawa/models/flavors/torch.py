"""The torch flavor: `SequenceCNN`, a small convolutional network over token sequences (the pages of a
session), trained with PyTorch on the CPU and served by numpy.

    Bundle.fit(table, label="bought", estimator=SequenceCNN(epochs=8))  # `pages` is a list<string> column

The bundle turns a list-of-strings column into token ids (see `kawa.models.sequences`); numeric and
categorical columns beside it feed the network's dense head. Saved as data only: one `.npy` array per
weight (read with `allow_pickle=False`) and the architecture as JSON in bundle.json. Predictions are a
numpy forward pass (`_convnet.py`): serving needs neither PyTorch nor its threads, and one row costs tens
of microseconds where an eager PyTorch call costs hundreds. PyTorch is imported only to train:
`pip install 'kawa[torch]'`.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np

from kawa.models.errors import BundleError
from kawa.models.flavors import Flavor, Hints, Task
from kawa.models.flavors._convnet import Architecture, ConvNet, architecture

INSTALL_HINT = "pip install 'kawa[torch]'"


class SequenceCNN:
    """Settings of kawa's sequence CNN: token embeddings -> 1-D convolution -> max pool -> dense head.

    Like a scikit-learn estimator, it only holds its settings; `Bundle.fit` trains a copy. `threads`
    (PyTorch's, while training) defaults to half the cores, at most two; `task` is what it does unless
    `Bundle.fit(task=...)` says otherwise.
    """

    def __init__(
        self,
        *,
        embedding_dim: int = 16,
        channels: int = 32,
        kernel_size: int = 3,
        hidden: int = 32,
        dropout: float = 0.1,
        epochs: int = 8,
        batch_size: int = 256,
        learning_rate: float = 3e-3,
        weight_decay: float = 1e-5,
        seed: int = 0,
        threads: int | None = None,
        task: Task = "classification",
    ) -> None:
        self.embedding_dim = embedding_dim
        self.channels = channels
        self.kernel_size = kernel_size
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.seed = seed
        self.threads = threads
        self.task: Task = task

    def get_params(self) -> dict[str, Any]:
        """The settings, as JSON."""
        return dict(vars(self))

    def __repr__(self) -> str:
        return f"SequenceCNN({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"


_WHOLE = ("embedding_dim", "channels", "kernel_size", "hidden", "epochs", "batch_size")


def _settings(estimator: SequenceCNN) -> dict[str, Any]:
    """The estimator's settings, checked, with the thread count filled in."""
    settings = estimator.get_params()
    for name in _WHOLE:
        if type(settings[name]) is not int or settings[name] < 1:
            raise BundleError(f"SequenceCNN({name}={settings[name]!r}): use a whole number, 1 or more")
    if not 0.0 <= settings["dropout"] < 1.0:
        raise BundleError(f"SequenceCNN(dropout={settings['dropout']!r}): use a number in [0, 1)")
    for name in ("learning_rate", "weight_decay"):
        if not isinstance(settings[name], int | float) or settings[name] < 0:
            raise BundleError(f"SequenceCNN({name}={settings[name]!r}): use a number, 0 or more")
    threads = settings["threads"]
    if threads is None:
        # Half the cores, at most two: the tensors are small, and on a small machine a second spinning
        # OpenMP thread costs more than it gives whenever the server or another job wants the core.
        settings["threads"] = max(1, min(2, (os.cpu_count() or 1) // 2))
    elif type(threads) is not int or threads < 1:
        raise BundleError(f"SequenceCNN(threads={threads!r}): use a whole number, 1 or more, or None")
    if type(settings["seed"]) is not int:
        raise BundleError(f"SequenceCNN(seed={settings['seed']!r}): use a whole number")
    return settings


class TorchFlavor(Flavor):
    """A trained SequenceCNN: its architecture and float32 weights, predicting with numpy."""

    name = "torch"

    def __init__(
        self,
        net: ConvNet,
        *,
        task: Task,
        n_classes: int,
        params: Mapping[str, Any],
        target: tuple[float, float] = (0.0, 1.0),
        epoch_loss: Sequence[float] = (),
    ) -> None:
        self.net = net
        self.task: Task = task
        self.n_classes = n_classes
        self._params = dict(params)
        self.target = target  # regression: the network predicts (y - mean) / std
        self.epoch_loss = list(epoch_loss)

    @classmethod
    def accepts(cls, estimator: object) -> bool:
        return isinstance(estimator, SequenceCNN)

    @classmethod
    def hints(cls, estimator: object) -> Hints:
        return Hints("onehot", True, "ids")

    @classmethod
    def task_of(cls, estimator: object) -> Task | None:
        task = getattr(estimator, "task", None)
        return task if task in ("classification", "regression") else None

    @classmethod
    def fit(
        cls,
        estimator: object,
        X: np.ndarray,
        y: np.ndarray,
        *,
        task: Task,
        n_classes: int,
        ordinal: Sequence[int],
        sequences: Sequence[tuple[int, int, int]] = (),
    ) -> Self:
        if not isinstance(estimator, SequenceCNN):
            raise BundleError(f"the torch flavor trains a SequenceCNN, not a {type(estimator).__name__}")
        settings = _settings(estimator)
        trainer = _trainer("training a SequenceCNN")
        outputs = n_classes if task == "classification" and n_classes > 2 else 1
        arch = architecture(sequences, X.shape[1], settings, outputs)
        if arch.inputs == 0:
            raise BundleError("a SequenceCNN needs at least one feature column")
        target = (0.0, 1.0)
        if task == "regression":
            std = float(y.std())
            target = (float(y.mean()), std if std > 0 else 1.0)
            y = (y - target[0]) / target[1]
        weights, losses = trainer.train(arch, X, y, task=task, settings=settings)
        return cls(
            ConvNet(arch, weights), task=task, n_classes=n_classes, params=settings, target=target,
            epoch_loss=losses,
        )  # fmt: skip

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._outputs(self.net.forward(X))

    def predict_row(self, x: np.ndarray) -> float | np.ndarray:
        z = self.net.forward_one(x)
        if self.n_classes > 2:
            return self._outputs(z[np.newaxis])[0]  # type: ignore[no-any-return]
        v = float(z[0])
        if self.task == "regression":
            return v * self.target[1] + self.target[0]
        # The logistic in plain floats (numpy's per-call overhead is most of a row's cost), stable for any v.
        return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))

    def _outputs(self, z: np.ndarray) -> np.ndarray:
        """Predictions from the network's raw outputs: probabilities, or values on the label's scale."""
        if self.task == "regression":
            return z[:, 0] * self.target[1] + self.target[0]  # type: ignore[no-any-return]
        if self.n_classes > 2:
            z = np.exp(z - z.max(axis=1, keepdims=True))
            return z / z.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]
        return np.exp(-np.logaddexp(0.0, -z[:, 0]))  # type: ignore[no-any-return]  # the logistic, stable

    def save(self) -> tuple[dict[str, bytes], dict[str, Any]]:
        files = {}
        for name, array in self.net.weights.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(
                buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False
            )
            files[f"{name}.npy"] = buffer.getvalue()
        meta = {
            "task": self.task,
            "n_classes": self.n_classes,
            "architecture": self.net.arch.to_json(),
            "target": list(self.target),
            "params": self._params,
            "epoch_loss": self.epoch_loss,
        }
        return files, meta

    @classmethod
    def load(
        cls, files: Mapping[str, bytes], meta: Mapping[str, Any], *, trusted: Sequence[str] = ()
    ) -> Self:
        task, n_classes = meta.get("task"), meta.get("n_classes")
        if task not in ("classification", "regression") or not isinstance(n_classes, int):
            raise BundleError(f"malformed torch flavor facts in bundle.json: {dict(meta)}")
        arch = Architecture.from_json(meta.get("architecture"))
        expected = {f"{name}.npy" for name in arch.shapes()}
        if set(files) != expected:
            raise BundleError(
                f"the torch flavor's files are {sorted(files)}; its architecture needs {sorted(expected)}"
            )
        weights = {}
        for name in arch.shapes():
            try:
                array = np.lib.format.read_array(io.BytesIO(files[f"{name}.npy"]), allow_pickle=False)
            except ValueError as exc:  # not an .npy file, or an object array (which would need pickle)
                raise BundleError(f"{name}.npy is not a plain numpy array file: {exc}") from None
            if array.dtype != np.float32:
                raise BundleError(f"{name}.npy holds {array.dtype}; the torch flavor saves float32")
            weights[name] = array
        target = meta.get("target", [0.0, 1.0])
        if not (
            isinstance(target, list) and len(target) == 2 and all(isinstance(v, int | float) for v in target)
        ):
            raise BundleError(f"malformed regression target scale in bundle.json: {target!r}")
        return cls(
            ConvNet(arch, weights), task=task, n_classes=n_classes, params=meta.get("params") or {},
            target=(float(target[0]), float(target[1])), epoch_loss=meta.get("epoch_loss") or [],
        )  # fmt: skip

    def params(self) -> dict[str, Any]:
        return {**self._params, "epoch_loss": [round(v, 6) for v in self.epoch_loss]}

    def to_torch(self) -> Any:
        """The network as a PyTorch module in eval mode (needs PyTorch), e.g. to export it to ONNX."""
        return _trainer("building the PyTorch module").load_module(self.net.arch, self.net.weights)


def _trainer(purpose: str) -> Any:
    """The PyTorch side of this flavor; BundleError saying how to install PyTorch when it is missing."""
    try:
        from kawa.models.flavors import _torch_train
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] != "torch":
            raise
        raise BundleError(
            f"{purpose} needs PyTorch, which is not installed: {INSTALL_HINT} "
            "(serving a trained one does not need it)"
        ) from exc
    return _torch_train
