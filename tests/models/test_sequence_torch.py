"""The torch flavor: a SequenceCNN bundle learns token order, serves raw JSON rows, saves as plain arrays,
loads bytes-identical, and kawa stays importable (and able to serve) without PyTorch."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from kawa.models import Bundle, BundleError, RowError, SequenceCNN
from kawa.models.flavors._torch_train import split
from kawa.models.flavors.torch import TorchFlavor
from kawa.stores.artifacts import ArtifactStore

FILLER = ["home", "category", "search", "item", "reviews"]


def ordered(n: int, seed: int) -> pa.Table:
    """Every row holds one "cart" and one "checkout" among filler pages; the label is whether checkout
    comes right after cart (with 10% noise), so counting pages tells nothing and order tells all."""
    rng = np.random.default_rng(seed)
    pages, label, spend = [], [], []
    for _ in range(n):
        seq = list(rng.choice(FILLER, int(rng.integers(2, 8))))
        i = int(rng.integers(0, len(seq) + 1))
        right = bool(rng.random() < 0.5)
        seq[i:i] = ["cart", "checkout"] if right else ["checkout", "cart"]
        pages.append(seq)
        spend.append(float(rng.normal()))
        label.append(right != (rng.random() < 0.1))
    return pa.table({"pages": pages, "spend": spend, "bought": label})


@pytest.fixture(scope="module")
def train() -> pa.Table:
    return ordered(2000, 0)


@pytest.fixture(scope="module")
def holdout() -> pa.Table:
    return ordered(600, 1)


@pytest.fixture(scope="module")
def cnn(train: pa.Table) -> Bundle:
    return Bundle.fit(train, label="bought", estimator=SequenceCNN(epochs=10, seed=3))


def test_the_cnn_learns_order_that_a_bag_of_pages_cannot_see(
    cnn: Bundle, train: pa.Table, holdout: pa.Table
) -> None:
    bag = Bundle.fit(train, label="bought", estimator=LogisticRegression(max_iter=1000))
    assert cnn.flavor.name == "torch" and cnn.options["sequences"] == "ids"
    assert bag.options["sequences"] == "counts"
    assert bag.evaluate(holdout)["auc"] < 0.6
    assert cnn.evaluate(holdout)["auc"] > 0.85
    losses = cnn.flavor.params()["epoch_loss"]
    assert len(losses) == 10 and losses[-1] < losses[0]


def test_training_is_deterministic_and_leaves_torch_settings_alone(train: pa.Table, cnn: Bundle) -> None:
    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    again = Bundle.fit(train, label="bought", estimator=SequenceCNN(epochs=10, seed=3))
    assert torch.rand(1) == expected_draw  # the caller's random stream is untouched
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()
    assert again.to_files() == cnn.to_files() | {"bundle.json": again.to_files()["bundle.json"]}
    other = Bundle.fit(train.slice(0, 300), label="bought", estimator=SequenceCNN(epochs=1, seed=4))
    assert not np.array_equal(other.flavor.net.weights["hidden.bias"], cnn.flavor.net.weights["hidden.bias"])


def test_numpy_serving_matches_the_torch_module(cnn: Bundle, holdout: pa.Table) -> None:
    flavor = cnn.flavor
    assert isinstance(flavor, TorchFlavor)
    X = cnn.preprocessor.transform_table(holdout)
    module = flavor.to_torch()
    assert isinstance(module, torch.nn.Module) and not module.training
    with torch.inference_mode():
        expected = torch.sigmoid(module(*split(flavor.net.arch, X))[:, 0]).double().numpy()
    np.testing.assert_allclose(cnn.predict_table(holdout), expected, atol=2e-6)


def test_predict_one_takes_raw_rows_with_unknown_tokens_and_empty_lists(
    cnn: Bundle, holdout: pa.Table
) -> None:
    rows = holdout.slice(0, 50).to_pylist()
    rows += [
        {"pages": [], "spend": 0.0},
        {"pages": None, "spend": None},
        {"pages": ["never-seen", None, "cart", "checkout"], "spend": 1.0},
        {"pages": ["home"] * 40 + ["cart", "checkout"], "spend": -1.0},  # longer than the model keeps
    ]
    one = np.array([cnn.predict_one(r) for r in rows])
    table = pa.Table.from_pylist(rows, schema=holdout.schema)
    np.testing.assert_allclose(one, cnn.predict_table(table), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(one, cnn.predict(rows), rtol=1e-12, atol=1e-15)
    assert ((one > 0) & (one < 1)).all()
    assert cnn.predict_one({"pages": [], "spend": 0.0}) == cnn.predict_one({"pages": None, "spend": 0.0})
    unknown = cnn.predict_one({"pages": ["zzz", "cart", "checkout"], "spend": 0.0})
    assert unknown == cnn.predict_one({"pages": ["yyy", "cart", "checkout"], "spend": 0.0})
    assert unknown > 0.5 > cnn.predict_one({"pages": ["zzz", "checkout", "cart"], "spend": 0.0})
    with pytest.raises(RowError, match="field 'pages' must be a list of strings"):
        cnn.predict_one({"pages": "cart", "spend": 0.0})
    with pytest.raises(RowError, match="field 'spend' is missing"):
        cnn.predict_one({"pages": ["cart"]})


def test_a_saved_bundle_is_plain_arrays_and_predicts_bytes_identically(
    cnn: Bundle, holdout: pa.Table, artifacts: ArtifactStore
) -> None:
    files = cnn.to_files()
    assert sorted(files) == sorted(["bundle.json", *(f"{n}.npy" for n in cnn.flavor.net.arch.shapes())])
    for name, data in files.items():
        if name.endswith(".npy"):
            array = np.load(io.BytesIO(data), allow_pickle=False)
            assert array.dtype == np.float32
    meta = json.loads(files["bundle.json"])["flavor_meta"]
    assert meta["architecture"]["sequences"] == [{"offset": 0, "length": 9, "vocabulary": 9}]
    assert meta["architecture"]["dense"] == [9]  # spend, beside the nine page slots
    cnn.save(artifacts, "models/shop/intent/1")
    loaded = Bundle.load(artifacts, "models/shop/intent/1")
    assert loaded.to_files() == files
    assert loaded.signature == cnn.signature
    assert loaded.predict_table(holdout).tobytes() == cnn.predict_table(holdout).tobytes()
    row = {"pages": ["home", "cart", "checkout", "nope"], "spend": 0.5}
    assert loaded.predict_one(row) == cnn.predict_one(row)


def test_tampered_weights_are_refused(cnn: Bundle) -> None:
    files = cnn.to_files()
    manifest = json.loads(files["bundle.json"])

    def reload(name: str, data: bytes) -> None:
        changed = {**files, name: data}
        manifest["files"][name] = __import__("hashlib").sha256(data).hexdigest()
        Bundle.from_files({**changed, "bundle.json": json.dumps(manifest).encode()})

    buffer = io.BytesIO()
    np.save(buffer, np.array([{"x": 1}], dtype=object), allow_pickle=True)  # needs pickle to read
    with pytest.raises(BundleError, match=r"hidden.bias.npy is not a plain numpy array file"):
        reload("hidden.bias.npy", buffer.getvalue())
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3, dtype=np.float32))
    with pytest.raises(BundleError, match=r"'hidden.bias' has shape \(3,\); expected \(32,\)"):
        reload("hidden.bias.npy", buffer.getvalue())


def test_other_tasks_and_numeric_only_inputs(train: pa.Table) -> None:
    three = train.append_column("kind", pa.array([len(p) % 3 for p in train.column("pages").to_pylist()]))
    small = SequenceCNN(epochs=3)
    multi = Bundle.fit(three.drop(["bought"]), label="kind", estimator=small)
    probabilities = multi.predict_one({"pages": ["home", "cart"], "spend": 0.0})
    assert isinstance(probabilities, dict) and sorted(probabilities) == [0, 1, 2]
    assert sum(probabilities.values()) == pytest.approx(1.0)
    amount = pa.array([100.0 + 50.0 * b for b in train.column("bought").to_pylist()])
    values = Bundle.fit(
        train.append_column("amount", amount),
        label="amount",
        features=["pages"],
        estimator=SequenceCNN(epochs=5, task="regression"),
    )
    assert values.task == "regression"
    right = values.predict_one({"pages": ["home", "cart", "checkout"]})
    assert right > values.predict_one({"pages": ["home", "checkout", "cart"]}) + 25  # on the label's scale
    assert 100 < right < 160
    numbers = Bundle.fit(train.select(["spend", "bought"]), label="bought", estimator=small)
    assert numbers.flavor.net.arch.sequences == ()
    assert 0 < numbers.predict_one({"spend": 1.0}) < 1
    with pytest.raises(BundleError, match=r"SequenceCNN\(channels=0\)"):
        Bundle.fit(train, label="bought", estimator=SequenceCNN(channels=0))


def test_predict_one_is_fast(cnn: Bundle) -> None:
    row = {"pages": ["home", "category", "item", "reviews", "item", "cart", "checkout"], "spend": 0.3}
    for _ in range(200):
        cnn.predict_one(row)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(500):
            cnn.predict_one(row)
        best = min(best, (time.perf_counter() - started) / 500)
    assert best < 1e-3  # measured ~50-100 µs on 2 shared cores; an eager PyTorch call costs ~250 µs


BLOCK_TORCH = """
import importlib.abc, sys

class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoTorch())
"""


def test_without_torch_kawa_imports_serves_and_says_how_to_install_for_training(
    cnn: Bundle, tmp_path: Path
) -> None:
    for name, data in cnn.to_files().items():
        (tmp_path / name).write_bytes(data)
    row = {"pages": ["home", "cart", "checkout"], "spend": 0.2}
    script = BLOCK_TORCH + textwrap.dedent(
        f"""
        import json, pathlib
        import pyarrow as pa
        import kawa, kawa.models
        from kawa.models import Bundle, BundleError, SequenceCNN
        assert "torch" not in sys.modules
        files = {{p.name: p.read_bytes() for p in pathlib.Path({str(tmp_path)!r}).iterdir()}}
        print(json.dumps(Bundle.from_files(files).predict_one({row!r})))
        try:
            Bundle.fit(pa.table({{"pages": [["a"], ["b"]], "y": [0, 1]}}), label="y", estimator=SequenceCNN())
        except BundleError as exc:
            print(exc)
        assert "torch" not in sys.modules
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    served, message = done.stdout.splitlines()
    assert json.loads(served) == cnn.predict_one(row)
    assert message == (
        "training a SequenceCNN needs PyTorch, which is not installed: pip install 'kawa[torch]' "
        "(serving a trained one does not need it)"
    )
