"""The LightGBM flavor: LGBMClassifier / LGBMRegressor, saved as LightGBM's own text model.

The text model is data (trees and thresholds) parsed by LightGBM's C++ loader; nothing in it is run
as code. Single rows go through LightGBM's "fast single row" C entry point with one thread, which
skips the per-call setup of `Booster.predict` (about 0.1 ms): a row costs tens of microseconds.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np

from kawa.models.errors import BundleError
from kawa.models.flavors import Flavor, Hints, Task

MODEL_FILE = "model.txt"


class LightGBMFlavor(Flavor):
    """A LightGBM booster with the facts needed to read its output."""

    name = "lightgbm"

    def __init__(self, booster: Any, *, task: Task, n_classes: int, params: Mapping[str, Any]) -> None:
        self.booster = booster
        self.task: Task = task
        self.n_classes = n_classes
        self._params = dict(params)
        self._n_features = int(booster.num_feature())
        self._fast = _FastRow.open(booster, self._n_features, n_outputs=n_classes if n_classes > 2 else 1)

    def __getstate__(self) -> dict[str, Any]:
        # The single-row handle is a C pointer; a pickled flavor (handed between pipeline steps) opens
        # its own when unpickled. The booster pickles itself as its model text.
        state = dict(self.__dict__)
        state["_fast"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        n_outputs = self.n_classes if self.n_classes > 2 else 1
        self._fast = _FastRow.open(self.booster, self._n_features, n_outputs=n_outputs)

    @classmethod
    def accepts(cls, estimator: object) -> bool:
        if not type(estimator).__module__.startswith("lightgbm"):
            return False
        import lightgbm

        return isinstance(estimator, lightgbm.LGBMModel)

    @classmethod
    def hints(cls, estimator: object) -> Hints:
        return Hints("ordinal", False)

    @classmethod
    def task_of(cls, estimator: object) -> Task | None:
        import lightgbm

        if isinstance(estimator, lightgbm.LGBMClassifier):
            return "classification"
        return "regression" if isinstance(estimator, lightgbm.LGBMRegressor) else None

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
    ) -> Self:
        import lightgbm
        from sklearn.base import clone

        model = clone(estimator)
        model.fit(X, y, categorical_feature=list(ordinal) if ordinal else "auto")
        # Through text and back, so a fresh bundle predicts exactly like a loaded one (e.g. with
        # early stopping, the text keeps the best iteration's trees only).
        booster = lightgbm.Booster(model_str=model.booster_.model_to_string())
        return cls(booster, task=task, n_classes=n_classes, params=_json_params(model.get_params()))

    def predict(self, X: np.ndarray) -> np.ndarray:
        # verbosity=-1: LightGBM warns on every call about the -1 codes kawa uses for missing categories.
        predicted = self.booster.predict(np.ascontiguousarray(X, dtype=np.float64), verbosity=-1)
        return np.asarray(predicted, dtype=np.float64)

    def predict_row(self, x: np.ndarray) -> float | np.ndarray:
        if self._fast is None:
            return super().predict_row(x)
        out = self._fast.predict(np.ascontiguousarray(x, dtype=np.float64))
        return float(out[0]) if out.size == 1 else out

    def save(self) -> tuple[dict[str, bytes], dict[str, Any]]:
        text = self.booster.model_to_string().encode()
        return {MODEL_FILE: text}, {"task": self.task, "n_classes": self.n_classes, "params": self._params}

    @classmethod
    def load(
        cls, files: Mapping[str, bytes], meta: Mapping[str, Any], *, trusted: Sequence[str] = ()
    ) -> Self:
        import lightgbm

        data = files.get(MODEL_FILE)
        if data is None:
            raise BundleError(f"the bundle has no {MODEL_FILE}; it was not saved by the lightgbm flavor")
        try:
            booster = lightgbm.Booster(model_str=data.decode("utf-8"))
        except (UnicodeDecodeError, lightgbm.basic.LightGBMError) as exc:
            raise BundleError(f"{MODEL_FILE} is not a LightGBM text model: {exc}") from None
        task, n_classes = meta.get("task"), meta.get("n_classes")
        if task not in ("classification", "regression") or not isinstance(n_classes, int):
            raise BundleError(f"malformed lightgbm flavor facts in bundle.json: {dict(meta)}")
        return cls(booster, task=task, n_classes=n_classes, params=meta.get("params") or {})

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def feature_importance(self) -> np.ndarray | None:
        # Total gain of the splits on each feature: unlike split counts, it weighs how much a split helped.
        return np.asarray(self.booster.feature_importance(importance_type="gain"), dtype=np.float64)


class _FastRow:
    """LightGBM's single-row prediction handle; calls are serialised, as the handle has one buffer."""

    def __init__(self, lib: Any, handle: ctypes.c_void_p, n_outputs: int) -> None:
        self._call = lib.LGBM_BoosterPredictForMatSingleRowFast
        self._handle = handle
        self._lock = threading.Lock()
        self._out = np.zeros(n_outputs, dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len = ctypes.c_int64()

    @classmethod
    def open(cls, booster: Any, n_features: int, *, n_outputs: int) -> _FastRow | None:
        """A handle for `booster`, or None where this LightGBM lacks the entry point (then
        `Booster.predict` serves single rows)."""
        try:
            from lightgbm.basic import _LIB, _c_str
        except ImportError:
            return None
        handle = ctypes.c_void_p()
        status = _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle,
            ctypes.c_int(0),  # C_API_PREDICT_NORMAL: probabilities / values, as Booster.predict
            ctypes.c_int(0),  # start iteration
            ctypes.c_int(-1),  # every iteration in the model
            ctypes.c_int(1),  # C_API_DTYPE_FLOAT64
            ctypes.c_int32(n_features),
            _c_str("num_threads=1 verbosity=-1"),
            ctypes.byref(handle),
        )
        if status != 0:
            return None
        fast = cls(_LIB, handle, n_outputs)
        # Free the handle with this object; keep the booster alive until then, as the handle points into it.
        weakref.finalize(fast, _free, _LIB, handle, booster)
        return fast

    def predict(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            status = self._call(
                self._handle, x.ctypes.data_as(ctypes.c_void_p), ctypes.byref(self._out_len), self._out_ptr
            )
            if status != 0:
                raise RuntimeError("LightGBM single-row prediction failed")
            return self._out.copy()


def _free(lib: Any, handle: ctypes.c_void_p, booster: Any) -> None:
    lib.LGBM_FastConfigFree(handle)


def _json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v if v is None or isinstance(v, bool | int | float | str) else repr(v) for k, v in params.items()
    }
