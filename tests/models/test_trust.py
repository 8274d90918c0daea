"""Loading a bundle never runs code from it: tampered, foreign or untrusted artifacts are refused."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pyarrow as pa
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression

from kawa.models import Bundle, BundleError


class Tripwire:
    """Writes a file when it is rebuilt from saved state: proof that loading ran code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).write_text("code ran")
        self.__dict__.update(state)


class PicklePayload:
    """A pickle that writes a file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "code ran"))


@pytest.fixture(scope="module")
def small(table: pa.Table) -> pa.Table:
    return table.slice(0, 500)


def _reseal(files: dict[str, bytes], name: str, data: bytes) -> dict[str, bytes]:
    """Replace one model file and fix its checksum, as an attacker with write access would."""
    manifest = json.loads(files["bundle.json"])
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    return {**files, name: data, "bundle.json": json.dumps(manifest).encode()}


def test_a_changed_file_fails_its_checksum(small: pa.Table) -> None:
    files = Bundle.fit(small, label="bought", estimator=LogisticRegression()).to_files()
    files["model.skops"] = files["model.skops"][:-1] + bytes([files["model.skops"][-1] ^ 1])
    with pytest.raises(BundleError, match=r"'model.skops' does not match the checksum"):
        Bundle.from_files(files)


def test_an_untrusted_type_in_a_skops_file_is_refused_before_it_runs(small: pa.Table, tmp_path: Path) -> None:
    bundle = Bundle.fit(small, label="bought", estimator=LogisticRegression())
    marker = tmp_path / "ran.txt"
    estimator = bundle.flavor.estimator  # type: ignore[attr-defined]
    estimator.tripwire_ = Tripwire(str(marker))
    evil = skops.io.dumps(estimator)
    del estimator.tripwire_
    files = _reseal(bundle.to_files(), "model.skops", evil)
    with pytest.raises(
        BundleError, match=r"refusing to load model.skops: .*tests\.models\.test_trust\.Tripwire"
    ):
        Bundle.from_files(files)
    assert not marker.exists()
    # The guard is what stopped it: vouching for the type lets skops rebuild it, and the code runs.
    Bundle.from_files(files, trusted=[f"{__name__}.Tripwire"])
    assert marker.read_text() == "code ran"


def test_a_function_is_not_trusted_even_from_scikit_learn(small: pa.Table) -> None:
    from sklearn.datasets import dump_svmlight_file
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    bundle = Bundle.fit(small, label="bought", estimator=LogisticRegression())
    # A pipeline whose first step would write files on every prediction.
    sneaky = make_pipeline(FunctionTransformer(dump_svmlight_file), bundle.flavor.estimator)  # type: ignore[attr-defined]
    files = _reseal(bundle.to_files(), "model.skops", skops.io.dumps(sneaky))
    with pytest.raises(BundleError, match=r"sklearn.datasets._svmlight_format_io.dump_svmlight_file"):
        Bundle.from_files(files)


@pytest.mark.parametrize("target", ["model.skops", "model.txt"])
def test_a_pickle_in_place_of_a_model_is_never_unpickled(
    small: pa.Table, tmp_path: Path, target: str
) -> None:
    estimator = (
        LogisticRegression()
        if target == "model.skops"
        else lightgbm.LGBMClassifier(n_estimators=5, verbose=-1)
    )
    files = Bundle.fit(small, label="bought", estimator=estimator).to_files()
    marker = tmp_path / "ran.txt"
    payload = pickle.dumps(PicklePayload(marker))
    with pytest.raises(BundleError, match=f"{target} is not a"):
        Bundle.from_files(_reseal(files, target, payload))
    assert not marker.exists()
    pickle.loads(payload)  # the payload is live: unpickling it would have run
    assert marker.exists()


def test_a_bundle_naming_an_unknown_flavor_or_format_is_refused(small: pa.Table) -> None:
    files = Bundle.fit(small, label="bought", estimator=LogisticRegression()).to_files()
    manifest = json.loads(files["bundle.json"])
    for change, message in [
        ({"flavor": "pickle"}, "no model flavor 'pickle' is installed"),
        ({"format": "kawa-bundle/99"}, "this kawa reads 'kawa-bundle/1'"),
        ({"files": {"../../etc/passwd": "0" * 64}}, "a file with a bad name"),
        ({"columns": [{"kind": "python", "name": "x"}]}, "unknown column kind 'python'"),
        ({"columns": [{"kind": "numeric", "name": "x"}]}, "malformed column"),
    ]:
        changed = {**files, "bundle.json": json.dumps({**manifest, **change}).encode()}
        with pytest.raises(BundleError, match=message):
            Bundle.from_files(changed)
    with pytest.raises(BundleError, match=r"bundle.json is missing"):
        Bundle.from_files({"model.skops": files["model.skops"]})
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.from_files({**files, "bundle.json": b"\x80not json"})


def test_the_saved_files_are_data(small: pa.Table) -> None:
    files = Bundle.fit(
        small, label="bought", estimator=lightgbm.LGBMClassifier(n_estimators=5, verbose=-1)
    ).to_files()
    assert set(files) == {"bundle.json", "model.txt"}
    manifest = json.loads(files["bundle.json"])
    assert manifest["format"] == "kawa-bundle/1" and manifest["flavor"] == "lightgbm"
    assert files["model.txt"].startswith(b"tree\nversion=")
    loaded = Bundle.from_files(files)
    np.testing.assert_array_equal(loaded.predict_table(small), Bundle.from_files(files).predict_table(small))
