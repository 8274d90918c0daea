"""How a step's return value is stored so the next step, in another process or a later run, can load it.

A value is written once to the artifact store under `runs/<run_id>/outputs/<step>.<ext>`:

- an Arrow table or record batch as an Arrow IPC file (`.arrow`), and a pandas frame the same way
  (`.pandas.arrow`, read back as a frame);
- JSON data (None, booleans, numbers, text, and lists and dicts of them) that survives a round trip
  unchanged as `.json`;
- anything else as a pickle (`.pkl`): a model, a numpy array, a set. These are files your own steps wrote
  in your own artifact store, read back only by your own runs.

The stored value's sha256 is its version: caching compares it to decide whether a later step's inputs
changed.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from kawa.stores.artifacts import ArtifactStore

_JSON_MAX_BYTES = 1_000_000


@dataclass(frozen=True)
class StoredValue:
    """A step's return value as stored in the artifact store: where, in which form, and its digest."""

    path: str
    kind: str  # arrow | pandas | json | pickle
    digest: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "kind": self.kind, "digest": self.digest}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredValue:
        return cls(path=str(data["path"]), kind=str(data["kind"]), digest=str(data["digest"]))


def output_path(run_id: str, step: str) -> str:
    """The artifact path (without suffix) of a step's stored return value."""
    return f"runs/{run_id}/outputs/{step}"


def encode(value: Any) -> tuple[str, str, bytes]:
    """`value` as (kind, file suffix, bytes); raises TypeError/pickle errors for what cannot be stored.

    >>> encode({"rows": 3})[:2]
    ('json', '.json')
    >>> encode(pa.table({"a": [1]}))[:2]
    ('arrow', '.arrow')
    """
    if isinstance(value, pa.RecordBatch):
        value = pa.Table.from_batches([value])
    if isinstance(value, pa.Table):
        return "arrow", ".arrow", _ipc(value)
    if _is_pandas(value):
        return "pandas", ".pandas.arrow", _ipc(pa.Table.from_pandas(value))
    text = _json_text(value)
    if text is not None:
        return "json", ".json", text.encode()
    return "pickle", ".pkl", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def decode(kind: str, data: bytes) -> Any:
    """The value that `encode` turned into (`kind`, `data`)."""
    if kind in ("arrow", "pandas"):
        with pa.ipc.open_file(pa.BufferReader(data)) as reader:
            table = reader.read_all()
        return table.to_pandas() if kind == "pandas" else table
    if kind == "json":
        return json.loads(data)
    if kind == "pickle":
        return pickle.loads(data)  # written by this project's own steps (module doc)
    raise ValueError(f"unknown stored value kind {kind!r}; was it written by a newer kawa?")


def store(artifacts: ArtifactStore, path: str, value: Any) -> StoredValue:
    """Write `value` under `path` + a suffix for its kind and return the reference to it."""
    kind, suffix, data = encode(value)
    full = path + suffix
    artifacts.put_bytes(full, data)
    return StoredValue(path=full, kind=kind, digest=hashlib.sha256(data).hexdigest())


def load(artifacts: ArtifactStore, ref: StoredValue) -> Any:
    """The value `ref` points at; FileNotFoundError if its file is gone."""
    return decode(ref.kind, artifacts.get_bytes(ref.path))


def _ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _is_pandas(value: Any) -> bool:
    module = type(value).__module__
    return module.startswith("pandas") and type(value).__name__ == "DataFrame"


def _json_text(value: Any) -> str | None:
    """JSON text for `value` if reading it back gives an equal value of the same types, else None."""
    if not _plain(value):
        return None
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return text if len(text) <= _JSON_MAX_BYTES else None


def _plain(value: Any, depth: int = 0) -> bool:
    # Tuples would come back as lists and int dict keys as text: only exact round trips go to JSON.
    if depth > 50:
        return False
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) is list:
        return all(_plain(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    return False
