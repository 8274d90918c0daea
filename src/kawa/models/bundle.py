"""The all-in-one model bundle: preprocessing + estimator + input signature, predicting from JSON rows.

A bundle saves to a few files: `bundle.json` (format, flavor, task, classes, every column's learned
encoding and the sha256 of each model file) plus the flavor's model files (`model.skops` for
scikit-learn, `model.txt` for LightGBM). All of them are data: loading parses JSON, checks the
checksums, and hands the model files to an installed flavor that reads them without running code
from them (see docs/models.md, "Trust model").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kawa import __version__
from kawa.models import metrics
from kawa.models.columns import Encoding, NumericColumn, Unknown, to_numpy
from kawa.models.errors import BundleError, RowError
from kawa.models.flavors import Flavor, Task, flavor_for, get_flavor
from kawa.models.preprocess import KindSpec, Preprocessor, TableLike, as_arrow
from kawa.stores.artifacts import ArtifactStore

FORMAT = "kawa-bundle/1"
MANIFEST = "bundle.json"
# Rows encoded at once by predict_table: big enough to amortise per-call costs, small enough that
# the feature matrix stays in cache-friendly sizes and memory stays flat for tables of any length.
BATCH_ROWS = 262_144
# Wide inputs (text n-grams, image pixels) get fewer rows per batch: at most this many matrix cells (256 MB).
BATCH_CELLS = 32_000_000

Prediction = float | dict[Any, float]


class Bundle:
    """A trained model that takes human-readable rows such as {"age": 34, "media": "Twitter"}.

    Build one with `Bundle.fit`; `predict_one` serves a single row (no DataFrame, a precompiled
    column plan), `predict` a list of rows, `predict_table` a whole table (vectorised).
    For a binary classifier a prediction is the probability of `positive_class`; for a multi-class
    one a dict class -> probability; for a regressor the value.
    """

    def __init__(
        self,
        preprocessor: Preprocessor,
        flavor: Flavor,
        *,
        task: Task,
        label: str,
        classes: Sequence[Any] | None = None,
        options: Mapping[str, Any] | None = None,
        created_at: str | None = None,
    ) -> None:
        self.preprocessor = preprocessor
        self.flavor = flavor
        self.task: Task = task
        self.label = label
        self.classes = list(classes or [])
        self.options = dict(options or {})
        self.created_at = created_at or datetime.now(UTC).isoformat()
        self._multiclass = task == "classification" and len(self.classes) > 2

    @classmethod
    def fit(
        cls,
        table: TableLike,
        *,
        label: str,
        estimator: object,
        task: Task | None = None,
        features: Sequence[str] | None = None,
        kinds: Mapping[str, KindSpec] | None = None,
        unknown: Unknown = "missing",
        encoding: Encoding | None = None,
        scale: bool | None = None,
        max_categories: int = 100,
        min_frequency: int = 1,
        sequence_length: int | None = None,
        flavor: str | None = None,
    ) -> Bundle:
        """Learn the preprocessing from `table`, then fit a copy of `estimator` on it.

        `features` defaults to every column but `label`; `kinds` declares a column's kind where its
        type says otherwise (e.g. an integer zip code is "categorical"); free text is "text" (TF-IDF of
        character n-grams, or `Text(...)` to choose them), images are "image" (or `Image(...)`).
        `encoding` and `scale` default to what suits the estimator (ordinal codes and no scaling for trees).
        `unknown="error"` makes a category unseen in training a RowError instead of "missing".
        A list-of-strings column (kind "sequence") keeps its last `sequence_length` tokens (default:
        the longest training list, up to 50), as token ids for sequence models, else as token counts.
        """
        data = as_arrow(table)
        if label not in data.column_names:
            raise BundleError(
                f"label {label!r} is not a column of the training table ({', '.join(data.column_names)})"
            )
        flavor_cls = get_flavor(flavor) if flavor else flavor_for(estimator)
        task = task or flavor_cls.task_of(estimator)
        if task not in ("classification", "regression"):
            raise BundleError(
                f"cannot tell whether {type(estimator).__name__} classifies or regresses; pass task=..."
            )
        names = list(features) if features is not None else [c for c in data.column_names if c != label]
        if label in names:
            raise BundleError(f"the label {label!r} cannot also be a feature")
        if unknown not in ("missing", "error"):
            raise BundleError(f"unknown={unknown!r}: use 'missing' (the default) or 'error'")
        if sequence_length is not None and (type(sequence_length) is not int or sequence_length < 1):
            raise BundleError(f"sequence_length={sequence_length!r}: use a whole number of tokens, 1 or more")
        hints = flavor_cls.hints(estimator)
        options: dict[str, Any] = {
            "encoding": encoding or hints.encoding,
            "scale": hints.scale if scale is None else scale,
            "unknown": unknown,
            "max_categories": max_categories,
            "min_frequency": min_frequency,
            "sequences": hints.sequences,
            "sequence_length": sequence_length,
        }
        preprocessor = Preprocessor.learn(data, features=names, kinds=kinds, **options)
        y_column = _labels(data.column(label))
        if y_column.null_count:
            raise BundleError(f"label {label!r} has {y_column.null_count} null values; drop those rows first")
        if data.num_rows == 0:
            raise BundleError("the training table has no rows")
        classes: list[Any] = []
        if task == "classification":
            classes = sorted(pc.unique(y_column).to_pylist())
            if len(classes) < 2:
                raise BundleError(
                    f"label {label!r} has a single class {classes!r}; a classifier needs two or more"
                )
            y = to_numpy(pc.index_in(y_column, value_set=pa.array(classes, y_column.type))).astype(np.int64)
        else:
            try:
                y = NumericColumn.floats(label, y_column)
            except RowError as exc:
                raise BundleError(f"a regression label {exc.problem}") from None
        # Only flavors that asked for token ids get their layout, so older flavors keep their signature.
        sequences = {"sequences": slots} if (slots := preprocessor.sequence_slots) else {}
        fitted = flavor_cls.fit(
            estimator, preprocessor.transform_table(data), y, task=task, n_classes=len(classes),
            ordinal=preprocessor.ordinal_slots, **sequences,
        )  # fmt: skip
        return cls(preprocessor, fitted, task=task, label=label, classes=classes, options=options)

    # -- predicting ----------------------------------------------------------------------------

    @property
    def positive_class(self) -> Any:
        """The class whose probability a binary classifier predicts (the larger of the two labels)."""
        return self.classes[1] if self.task == "classification" and len(self.classes) == 2 else None

    def predict_one(self, row: Mapping[str, Any]) -> Prediction:
        """The prediction for one row; RowError naming the field if the row is not usable."""
        out = self.flavor.predict_row(self.preprocessor.transform_row(row))
        if self._multiclass:
            return dict(zip(self.classes, np.asarray(out).tolist(), strict=True))
        return out  # type: ignore[return-value]

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        """Predictions for a list of rows, in order; RowError naming the row and field."""
        if isinstance(rows, Mapping):
            raise RowError(None, "expected a list of rows; use predict_one for a single row")
        if not rows:
            return []
        return self._as_list(self.flavor.predict(self.preprocessor.transform_rows(rows)))

    def predict_table(self, table: TableLike, *, batch_rows: int = BATCH_ROWS) -> np.ndarray:
        """Predictions for every row of a table: (n,) values, or (n, k) probabilities for multi-class."""
        data = as_arrow(table)
        out: np.ndarray | None = None
        batch_rows = max(1, min(batch_rows, BATCH_CELLS // max(self.preprocessor.width, 1)))
        for start in range(0, data.num_rows, batch_rows):
            predicted = self.flavor.predict(self.preprocessor.transform_table(data.slice(start, batch_rows)))
            if out is None:
                out = np.empty((data.num_rows, *predicted.shape[1:]), dtype=np.float64)
            out[start : start + len(predicted)] = predicted
        if out is None:
            return np.empty((0, len(self.classes)) if self._multiclass else 0, dtype=np.float64)
        return out

    def evaluate(self, table: TableLike) -> dict[str, Any]:
        """Holdout metrics of this model on `table`, which holds the label column."""
        data = as_arrow(table)
        if self.label not in data.column_names:
            raise BundleError(f"the holdout table has no label column {self.label!r}")
        y_column = _labels(data.column(self.label))
        predicted = self.predict_table(data)
        if self.task == "regression":
            return metrics.regression_metrics(NumericColumn.floats(self.label, y_column), predicted)
        codes = pc.index_in(y_column, value_set=pa.array(self.classes, y_column.type))
        if codes.null_count:
            raise BundleError(f"the holdout label {self.label!r} has nulls or classes unseen in training")
        return metrics.classification_metrics(to_numpy(codes), predicted)

    # -- describing --------------------------------------------------------------------------------

    @property
    def signature(self) -> dict[str, Any]:
        """The inputs a row needs and what a prediction means, as JSON."""
        kind = (
            "value" if self.task == "regression" else "probabilities" if self._multiclass else "probability"
        )
        return {
            "inputs": self.preprocessor.signature(),
            "output": {
                "task": self.task,
                "label": self.label,
                "kind": kind,
                "classes": self.classes,
                "positive_class": self.positive_class,
            },
            "example": self.preprocessor.example(),
        }

    def feature_importance(self) -> dict[str, float] | None:
        """Each input's share of the model's feature importance (summing to 1), largest first, as the
        flavor measures it; None where the flavor cannot tell. A one-hot input adds up its slots."""
        slots = self.flavor.feature_importance()
        widths = [c.width for c in self.preprocessor.columns]
        if slots is None or slots.size != sum(widths):
            return None
        ends = np.cumsum(widths)
        totals = [float(slots[end - width : end].sum()) for end, width in zip(ends, widths, strict=True)]
        grand = sum(totals)
        shares = [t / grand if grand > 0 else 0.0 for t in totals]
        named = zip((c.name for c in self.preprocessor.columns), shares, strict=True)
        return dict(sorted(named, key=lambda item: -item[1]))

    def params(self) -> dict[str, Any]:
        """The estimator's settings and the preprocessing options, as JSON."""
        return {"flavor": self.flavor.name, "estimator": self.flavor.params(), "preprocessing": self.options}

    def __repr__(self) -> str:
        inputs = ", ".join(c.name for c in self.preprocessor.columns)
        return f"<Bundle {self.flavor.name} {self.task} of {self.label!r} from {inputs}>"

    # -- saving and loading ------------------------------------------------------------------------

    def to_files(self) -> dict[str, bytes]:
        """The bundle as files (name -> bytes): `bundle.json` and the flavor's model files."""
        files, meta = self.flavor.save()
        for name in files:
            if name == MANIFEST or "/" in name or name.startswith("."):
                raise BundleError(f"flavor {self.flavor.name!r} may not write a file called {name!r}")
        manifest = {
            "format": FORMAT,
            "kawa_version": __version__,
            "created_at": self.created_at,
            "flavor": self.flavor.name,
            "flavor_meta": meta,
            "task": self.task,
            "label": self.label,
            "classes": self.classes,
            "options": self.options,
            "columns": self.preprocessor.to_json(),
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
        }
        return {MANIFEST: json.dumps(manifest, indent=1, allow_nan=False).encode(), **files}

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], *, trusted: Sequence[str] = ()) -> Bundle:
        """The bundle saved by `to_files`; BundleError if it is malformed, changed or untrusted."""
        manifest = _manifest(files.get(MANIFEST))
        try:
            flavor_cls = get_flavor(manifest["flavor"])
        except LookupError as exc:
            raise BundleError(str(exc)) from None
        model_files = {}
        for name, digest in manifest["files"].items():
            data = files.get(name)
            if data is None:
                raise BundleError(f"the bundle lists {name!r} but the file is not there")
            if hashlib.sha256(data).hexdigest() != digest:
                raise BundleError(
                    f"{name!r} does not match the checksum in bundle.json: it changed after saving"
                )
            model_files[name] = data
        preprocessor = Preprocessor.from_json(manifest["columns"])
        flavor = flavor_cls.load(model_files, manifest["flavor_meta"], trusted=trusted)
        return cls(
            preprocessor,
            flavor,
            task=manifest["task"],
            label=manifest["label"],
            classes=manifest["classes"],
            options=manifest["options"],
            created_at=manifest["created_at"],
        )

    def save(self, store: ArtifactStore, prefix: str) -> list[str]:
        """Write the bundle's files under `prefix` in the artifact store; returns their paths.

        `bundle.json` goes last, so a reader that finds it finds the whole bundle.
        """
        paths = write_files(store, prefix, self.to_files())
        return paths

    @classmethod
    def load(cls, store: ArtifactStore, prefix: str, *, trusted: Sequence[str] = ()) -> Bundle:
        """The bundle saved under `prefix` in the artifact store."""
        try:
            raw = store.get_bytes(f"{prefix}/{MANIFEST}")
        except FileNotFoundError:
            raise BundleError(f"no model bundle at {prefix!r}: {MANIFEST} is missing") from None
        files = {MANIFEST: raw}
        for name in _manifest(raw)["files"]:
            try:
                files[name] = store.get_bytes(f"{prefix}/{name}")
            except FileNotFoundError:
                raise BundleError(
                    f"the bundle at {prefix!r} lists {name!r} but the file is not there"
                ) from None
        return cls.from_files(files, trusted=trusted)

    def _as_list(self, predicted: np.ndarray) -> list[Prediction]:
        if self._multiclass:
            return [dict(zip(self.classes, row, strict=True)) for row in predicted.tolist()]
        return predicted.tolist()  # type: ignore[no-any-return]


def write_files(store: ArtifactStore, prefix: str, files: Mapping[str, bytes]) -> list[str]:
    """Write a bundle's files under `prefix`, `bundle.json` last; returns their paths."""
    order = [n for n in files if n != MANIFEST] + [MANIFEST]
    paths = [f"{prefix}/{name}" for name in order]
    for name, path in zip(order, paths, strict=True):
        store.put_bytes(path, files[name])
    return paths


_MANIFEST_KEYS = (
    "format",
    "flavor",
    "flavor_meta",
    "task",
    "label",
    "classes",
    "options",
    "columns",
    "files",
)


def _manifest(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise BundleError(f"not a model bundle: {MANIFEST} is missing")
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BundleError(
            f"{MANIFEST} has format {found!r}; this kawa reads {FORMAT!r} (upgrade kawa for newer ones)"
        )
    missing = [k for k in _MANIFEST_KEYS if k not in manifest]
    if missing:
        raise BundleError(f"{MANIFEST} lacks {', '.join(missing)}")
    if manifest["task"] not in ("classification", "regression") or not isinstance(manifest["files"], dict):
        raise BundleError(f"{MANIFEST} is malformed: bad task or files")
    for name in manifest["files"]:
        if not isinstance(name, str) or not name or name == MANIFEST or "/" in name or name.startswith("."):
            raise BundleError(f"{MANIFEST} lists a file with a bad name: {name!r}")
    manifest.setdefault("created_at", None)
    return manifest


def _labels(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A label column with dictionary encoding undone, so classes compare as plain values."""
    return pc.cast(column, column.type.value_type) if pa.types.is_dictionary(column.type) else column
