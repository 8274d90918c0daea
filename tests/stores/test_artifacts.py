"""Contract tests for every artifact store backend."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import pytest

from kawa.stores._backends import BackendError
from kawa.stores.artifacts import ArtifactStore, open_artifacts
from kawa.stores.artifacts.fsspec import FsspecArtifactStore
from kawa.stores.artifacts.local import LocalArtifactStore


def _local(tmp_path: Path) -> ArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def _fsspec_memory(tmp_path: Path) -> ArtifactStore:
    # fsspec's memory file system is one per process: give each test its own bucket.
    return FsspecArtifactStore(f"memory://kawa-test-{uuid.uuid4().hex}/artifacts")


def _fsspec_file(tmp_path: Path) -> ArtifactStore:
    return FsspecArtifactStore((tmp_path / "fsspec-artifacts").as_uri())


IMPLEMENTATIONS = [_local, _fsspec_memory, _fsspec_file]


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda f: f.__name__.strip("_"))
def store(request: pytest.FixtureRequest, tmp_path: Path):
    with request.param(tmp_path) as store:
        yield store
    if (
        isinstance(store, FsspecArtifactStore)
        and store.url.startswith("memory://")
        and store.fs.exists(store.url)
    ):
        store.fs.rm(store.url, recursive=True)


def test_bytes_round_trip_and_replace(store: ArtifactStore) -> None:
    payload = bytes(range(256)) * 100
    store.put_bytes("models/loyalty/3/model.kawa", payload)
    assert store.get_bytes("models/loyalty/3/model.kawa") == payload
    store.put_bytes("models/loyalty/3/model.kawa", b"v2")
    assert store.get_bytes("models/loyalty/3/model.kawa") == b"v2"
    store.put_bytes("empty", b"")
    assert store.get_bytes("empty") == b""


def test_put_file_copies_a_local_file(store: ArtifactStore, tmp_path: Path) -> None:
    local = tmp_path / "trained.bin"
    local.write_bytes(b"weights" * 1000)
    store.put_file("models/rfm/1/weights.bin", local)
    local.write_bytes(b"changed later")  # the store kept its own copy
    assert store.get_bytes("models/rfm/1/weights.bin") == b"weights" * 1000
    with pytest.raises(FileNotFoundError):
        store.put_file("models/rfm/1/other.bin", tmp_path / "missing.bin")
    assert not store.exists("models/rfm/1/other.bin")


def test_missing_files_raise_file_not_found(store: ArtifactStore) -> None:
    with pytest.raises(FileNotFoundError, match=r"no artifact 'nope/model\.kawa'"):
        store.get_bytes("nope/model.kawa")
    with pytest.raises(FileNotFoundError):
        store.open("nope/model.kawa")
    store.put_bytes("runs/1/train.log", b"x")
    with pytest.raises(FileNotFoundError):
        store.get_bytes("runs/1")  # a folder is not a file
    assert not store.exists("nope/model.kawa")
    assert not store.exists("runs/1")
    assert store.exists("runs/1/train.log")


def test_open_streams_both_ways(store: ArtifactStore) -> None:
    with store.open("runs/7/train.log", "wb") as f:
        for epoch in range(3):
            f.write(f"epoch {epoch}\n".encode())
    with store.open("runs/7/train.log") as f:
        assert f.read().decode().splitlines() == ["epoch 0", "epoch 1", "epoch 2"]
    with pytest.raises(ValueError, match="'rb' or 'wb'"):
        store.open("runs/7/train.log", "ab")


def test_a_failed_write_publishes_nothing(store: ArtifactStore) -> None:
    store.put_bytes("models/m/model.kawa", b"the good one")
    with pytest.raises(RuntimeError, match="training crashed"), store.open("models/m/model.kawa", "wb") as f:
        f.write(b"half a mod")
        raise RuntimeError("training crashed")
    with pytest.raises(RuntimeError, match="boom"), store.open("models/m/new.kawa", "wb") as f:
        f.write(b"partial")
        raise RuntimeError("boom")
    assert store.get_bytes("models/m/model.kawa") == b"the good one"
    assert not store.exists("models/m/new.kawa")
    assert store.list("models/m") == ["models/m/model.kawa"]  # no temporary files show


def test_a_writer_dropped_without_close_publishes_nothing(store: ArtifactStore) -> None:
    f = store.open("models/m/abandoned.kawa", "wb")
    f.write(b"never closed")
    del f
    assert not store.exists("models/m/abandoned.kawa")
    assert store.list() == []


def test_list_is_sorted_and_matches_whole_path_segments(store: ArtifactStore) -> None:
    for path in ["runs/10/log", "runs/1/log", "runs/1/metrics.json", "runs/1x", "models/a/b/c.bin"]:
        store.put_bytes(path, b".")
    assert store.list() == ["models/a/b/c.bin", "runs/1/log", "runs/1/metrics.json", "runs/10/log", "runs/1x"]
    assert store.list("runs/1") == ["runs/1/log", "runs/1/metrics.json"]
    assert store.list("runs/1/") == ["runs/1/log", "runs/1/metrics.json"]
    assert store.list("runs/1/log") == ["runs/1/log"]
    assert store.list("models") == ["models/a/b/c.bin"]
    assert store.list("nothing/here") == []


def test_delete_removes_a_file_or_a_folder_and_counts(store: ArtifactStore) -> None:
    for path in ["runs/1/log", "runs/1/metrics.json", "runs/10/log", "keep.txt"]:
        store.put_bytes(path, b".")
    assert store.delete("runs/1") == 2
    assert store.list() == ["keep.txt", "runs/10/log"]
    assert store.delete("runs/10/log") == 1
    assert store.delete("runs/10/log") == 0
    assert store.list() == ["keep.txt"]
    with pytest.raises(ValueError, match="needs a prefix"):
        store.delete("")
    store.put_bytes("runs/1/log", b"again")  # a deleted folder can be written again
    assert store.get_bytes("runs/1/log") == b"again"


@pytest.mark.parametrize(
    "bad",
    ["", "/etc/passwd", "../outside", "models/../../outside", "a//b", "./a", "a/./b", "a\\b", "a/", "a\x00b"],
)
def test_unsafe_paths_are_refused(store: ArtifactStore, bad: str) -> None:
    with pytest.raises(ValueError, match="artifact path"):
        store.put_bytes(bad, b"x")
    with pytest.raises(ValueError, match="artifact path"):
        store.get_bytes(bad)
    with pytest.raises(ValueError, match="artifact path"):
        store.exists(bad)
    assert store.list() == []


def test_unsafe_prefixes_are_refused(store: ArtifactStore) -> None:
    for bad in ["../", "/", "a/../..", ".kawa-tmp-x"]:
        with pytest.raises(ValueError, match="artifact path"):
            store.list(bad)
        with pytest.raises(ValueError, match="artifact path"):
            store.delete(bad)


def test_uri_opens_the_same_file_with_fsspec(store: ArtifactStore) -> None:
    store.put_bytes("models/m/model.kawa", b"model bytes")
    uri = store.uri("models/m/model.kawa")
    assert "://" in uri and uri.endswith("/models/m/model.kawa")
    with fsspec.open(uri, "rb") as f:
        assert f.read() == b"model bytes"


def test_local_files_live_where_their_paths_say(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    store.put_bytes("models/m/model.kawa", b"x")
    assert (tmp_path / "artifacts" / "models" / "m" / "model.kawa").read_bytes() == b"x"
    assert store.uri("models/m/model.kawa") == (tmp_path / "artifacts/models/m/model.kawa").as_uri()
    assert not list((tmp_path / "artifacts").rglob("*kawa-tmp*"))  # no temporary files left over


def test_open_artifacts_picks_backends_by_name_or_url(tmp_path: Path) -> None:
    local = open_artifacts("local", tmp_path)
    assert isinstance(local, LocalArtifactStore)
    assert local.root == tmp_path / "artifacts"
    by_file_url = open_artifacts((tmp_path / "elsewhere").as_uri(), tmp_path)
    assert isinstance(by_file_url, LocalArtifactStore)
    assert by_file_url.root == tmp_path / "elsewhere"
    bucket = f"memory://kawa-test-{uuid.uuid4().hex}"
    remote = open_artifacts(f"{bucket}/artifacts", tmp_path)
    assert isinstance(remote, FsspecArtifactStore)
    remote.put_bytes("a", b"1")
    assert open_artifacts(f"{bucket}/artifacts", tmp_path).get_bytes("a") == b"1"
    remote.fs.rm(bucket, recursive=True)
    with pytest.raises(BackendError, match="use one of"):
        open_artifacts("s4", tmp_path)
    with pytest.raises(BackendError, match="nope://"):
        open_artifacts("nope://bucket/x", tmp_path)
