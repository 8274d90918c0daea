"""Project API keys: format, verification, revocation across rings and processes, storage."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from kawa.auth import (
    InvalidKeyError,
    KeyConflictError,
    KeyInfo,
    KeyRing,
    ProjectKeys,
    ProjectNameError,
    Role,
    generate_key,
    generate_keys,
    validate_project_name,
)
from kawa.auth import keys as keys_module
from kawa.stores.metadata import MetadataStore, open_metadata

KEY_SHAPE = re.compile(r"kw_([wra])_([A-Za-z0-9]{10})_([A-Za-z0-9_-]{32})")


@pytest.fixture
def store(tmp_path: Path):
    with open_metadata("sqlite", tmp_path / "state") as store:
        yield store


@pytest.fixture
def ring(store: MetadataStore):
    with KeyRing(store) as ring:
        yield ring


def _parts(key: str) -> tuple[str, str, str]:
    match = KEY_SHAPE.fullmatch(key)
    assert match is not None, key
    letter, key_id, secret = match.groups()
    return letter, key_id, secret


def _run(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_generated_keys_have_the_documented_shape_and_differ() -> None:
    first, second = generate_keys(), generate_keys()
    keys = [first.write_key, first.read_key, first.admin_key, second.write_key, second.read_key]
    assert [_parts(k)[0] for k in keys[:3]] == ["w", "r", "a"]
    assert len({_parts(k)[1] for k in keys}) == len(keys)
    assert len({_parts(k)[2] for k in keys}) == len(keys)
    assert _parts(generate_key(Role.ADMIN))[0] == "a"


def test_each_key_verifies_to_its_project_and_role(ring: KeyRing) -> None:
    keys = ring.add_project("shop")
    for key, role in ((keys.write_key, Role.WRITE), (keys.read_key, Role.READ), (keys.admin_key, Role.ADMIN)):
        assert ring.verify(key) == KeyInfo(project="shop", role=role, key_id=_parts(key)[1])
        assert ring.verify(key) == KeyInfo(project="shop", role=role, key_id=_parts(key)[1])  # cached


def test_a_wrong_secret_is_refused(ring: KeyRing) -> None:
    keys = ring.add_project("shop")
    assert ring.verify(keys.read_key) is not None  # now cached: the cache must still check the secret
    letter, key_id, secret = _parts(keys.read_key)
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert ring.verify(f"kw_{letter}_{key_id}_{flipped}") is None
    assert ring.verify(f"kw_{letter}_{key_id}_{_parts(keys.admin_key)[2]}") is None
    # The role letter is part of the key: a read key relabelled as admin is not an admin key.
    assert ring.verify(f"kw_a_{key_id}_{secret}") is None


def test_an_unknown_key_is_refused(ring: KeyRing) -> None:
    ring.add_project("shop")
    assert ring.verify(generate_key(Role.ADMIN)) is None


def _malformed(valid: str) -> list[object]:
    _, key_id, secret = _parts(valid)
    return [
        "",
        "kw_",
        "kw_r__",
        "kw_r_" + key_id,
        f"kw_r_{key_id}_",
        f"kw_x_{key_id}_{secret}",
        f"KW_r_{key_id}_{secret}",
        f"kw_R_{key_id}_{secret}",
        f"kw-r-{key_id}-{secret}",
        f"kw_r_{key_id}_{secret}x",
        f"kw_r_{key_id}_{secret[:-1]}",
        f"kw_r_{key_id[:-1]}_{secret}",
        f"kw_r_{key_id}x_{secret}",
        f" kw_r_{key_id}_{secret}",
        f"kw_r_{key_id}_{secret}\n",
        f"kw_r_{key_id}_{secret[:-1]}\x00",
        f"kw_r_{key_id[:-1]}\u0661_{secret}",  # an Arabic-Indic digit
        f"kw_r_{key_id}_{secret[:-1]}é",
        f"kw_r_{key_id}_{secret[:-2]}\ud800x",  # a lone surrogate cannot be encoded
        f"kw_r_{key_id[:-1]}'_{secret}",
        "kw_r_' OR 1=1 --_" + "x" * 32,
        f"Bearer kw_r_{key_id}_{secret}",
        "kw_r_" + "a" * 10 + "_" + "b" * 1_000_000,
        valid.encode(),
        None,
        123,
        [valid],
    ]


def test_malformed_keys_are_refused_without_raising(ring: KeyRing) -> None:
    keys = ring.add_project("shop")
    for bad in _malformed(keys.read_key):
        assert ring.verify(bad) is None, repr(bad)[:80]  # type: ignore[arg-type]
    assert ring.verify(keys.read_key) is not None


def test_a_revoked_key_is_refused_at_once_by_another_ring(store: MetadataStore, ring: KeyRing) -> None:
    keys = ring.add_project("shop")
    assert ring.verify(keys.admin_key) is not None  # cached in `ring`
    with KeyRing(store) as other:
        assert other.revoke(keys.admin_key) is True
        assert other.revoke(keys.admin_key) is False  # already revoked
    assert ring.verify(keys.admin_key) is None
    assert ring.verify(keys.read_key) is not None


def test_a_revoked_key_is_refused_at_once_when_another_process_revokes_it(
    ring: KeyRing, tmp_path: Path
) -> None:
    keys = ring.add_project("shop")
    assert ring.verify(keys.write_key) is not None  # cached
    late = generate_key(Role.READ)
    assert ring.verify(late) is None  # cached as unknown
    out = _run(f"""
        from pathlib import Path
        from kawa.auth import KeyRing
        from kawa.stores.metadata import open_metadata
        with open_metadata("sqlite", Path({str(tmp_path / "state")!r})) as store, KeyRing(store) as ring:
            print(ring.revoke({_parts(keys.write_key)[1]!r}), ring.register("shop", {late!r}).key_id)
    """)
    assert out.split() == ["True", _parts(late)[1]]
    assert ring.verify(keys.write_key) is None
    assert ring.verify(late) == KeyInfo("shop", Role.READ, _parts(late)[1])


def test_revocation_during_concurrent_verification_holds_from_then_on(ring: KeyRing) -> None:
    keys = ring.add_project("shop")
    revoked = threading.Event()
    late_accepts: list[KeyInfo] = []
    stop = threading.Event()

    def verifier() -> None:
        while not stop.is_set():
            after = revoked.is_set()
            result = ring.verify(keys.read_key)
            if after and result is not None:
                late_accepts.append(result)

    threads = [threading.Thread(target=verifier) for _ in range(4)]
    for thread in threads:
        thread.start()
    with KeyRing(ring.metadata) as other:
        for _ in range(50):  # let the verifiers fill and hit the cache first
            other.verify(keys.read_key)
        assert other.revoke(keys.read_key)
    revoked.set()
    threading.Event().wait(0.2)
    stop.set()
    for thread in threads:
        thread.join()
    assert late_accepts == []


def test_keys_of_two_projects_are_distinct(ring: KeyRing) -> None:
    shop, blog = ring.add_project("shop"), ring.add_project("blog")
    shop_keys = {shop.write_key, shop.read_key, shop.admin_key}
    blog_keys = {blog.write_key, blog.read_key, blog.admin_key}
    assert not shop_keys & blog_keys
    assert {ring.verify(k).project for k in shop_keys} == {"shop"}  # type: ignore[union-attr]
    assert {ring.verify(k).project for k in blog_keys} == {"blog"}  # type: ignore[union-attr]
    assert ring.projects() == ["blog", "shop"]
    assert {k["project"] for k in ring.list_keys("blog")} == {"blog"}
    assert len(ring.list_keys()) == 6


def test_adding_the_same_keys_again_changes_nothing(ring: KeyRing) -> None:
    keys = generate_keys()
    assert ring.add_project("shop", keys) == keys
    before = ring.list_keys()
    assert ring.add_project("shop", keys) == keys
    assert ring.list_keys() == before
    assert ring.register("shop", keys.read_key) == KeyInfo("shop", Role.READ, _parts(keys.read_key)[1])
    assert ring.list_keys() == before


def test_adding_a_project_again_without_keys_adds_a_fresh_set(ring: KeyRing) -> None:
    first = ring.add_project("shop")
    second = ring.add_project("shop")
    assert first != second
    assert len(ring.list_keys("shop")) == 6
    assert all(ring.verify(k) is not None for k in (first.admin_key, second.admin_key))


def test_a_key_id_taken_by_another_project_or_secret_is_a_conflict(ring: KeyRing) -> None:
    keys = ring.add_project("shop")
    with pytest.raises(KeyConflictError):
        ring.register("blog", keys.read_key)
    _, key_id, _ = _parts(keys.read_key)
    with pytest.raises(KeyConflictError):
        ring.register("shop", f"kw_r_{key_id}_{'z' * 32}")
    fresh_write = generate_key(Role.WRITE)
    with pytest.raises(KeyConflictError):
        ring.add_project("shop", ProjectKeys(fresh_write, f"kw_r_{key_id}_{'z' * 32}", keys.admin_key))
    assert ring.verify(fresh_write) is None, "a conflicting set is not registered in part"
    assert len(ring.list_keys()) == 3


def test_keys_in_the_wrong_slot_or_malformed_are_rejected(ring: KeyRing) -> None:
    good = generate_keys()
    with pytest.raises(InvalidKeyError, match=r"write_key .* must be a write key"):
        ring.add_project("shop", ProjectKeys(good.read_key, good.read_key, good.admin_key))
    with pytest.raises(InvalidKeyError, match=r"admin_key .* not a kawa key"):
        ring.add_project("shop", ProjectKeys(good.write_key, good.read_key, "secret"))
    with pytest.raises(InvalidKeyError, match="not a kawa key"):
        ring.register("shop", "kw_r_short_secret")
    assert ring.projects() == [] and ring.list_keys() == []


def test_a_revoked_key_stays_revoked_when_registered_again(ring: KeyRing) -> None:
    keys = ring.add_project("shop")
    assert ring.revoke(_parts(keys.admin_key)[1]) is True  # by key id
    ring.add_project("shop", keys)
    assert ring.verify(keys.admin_key) is None
    revoked = [k for k in ring.list_keys() if k["revoked_at"] is not None]
    assert [k["key_id"] for k in revoked] == [_parts(keys.admin_key)[1]]


def test_revoking_an_unknown_key_says_so(ring: KeyRing) -> None:
    assert ring.revoke("nope") is False
    assert ring.revoke(generate_key(Role.READ)) is False
    assert ring.revoke("") is False


@pytest.mark.parametrize("name", ["a", "shop", "web-eu", "a1_b", "x" * 64])
def test_valid_project_names(ring: KeyRing, name: str) -> None:
    assert validate_project_name(name) == name
    ring.add_project(name)
    assert ring.projects() == [name]


@pytest.mark.parametrize(
    "name", ["", "Shop", "1shop", "-x", "_x", "shop eu", "x" * 65, "shöp", "x/y", "a.b", "shop\n", None]
)
def test_invalid_project_names_are_rejected_with_the_rule(ring: KeyRing, name: object) -> None:
    with pytest.raises(ProjectNameError, match="lowercase letters, digits"):
        ring.add_project(name)  # type: ignore[arg-type]
    with pytest.raises(ProjectNameError):
        ring.register(name, generate_key(Role.READ))  # type: ignore[arg-type]
    assert ring.projects() == []


def test_listed_keys_carry_no_secrets(ring: KeyRing) -> None:
    keys = ring.add_project("shop")
    listed = ring.list_keys("shop")
    assert sorted(k["role"] for k in listed) == sorted(Role)
    assert all(set(k) == {"key_id", "project", "role", "created_at", "revoked_at"} for k in listed)
    text = repr(listed)
    for key in (keys.write_key, keys.read_key, keys.admin_key):
        assert _parts(key)[2] not in text


def test_no_plaintext_secret_reaches_the_database_files(store: MetadataStore, tmp_path: Path) -> None:
    with KeyRing(store) as ring:
        keys = ring.add_project("shop")
        ring.register("shop", extra := generate_key(Role.READ))
    files = [p for p in (tmp_path / "state").iterdir() if p.name.startswith("metadata.sqlite3")]
    data = b"".join(p.read_bytes() for p in files)
    for key in (keys.write_key, keys.read_key, keys.admin_key, extra):
        _, key_id, secret = _parts(key)
        assert secret.encode() not in data
        # The files do hold the rows: the key id and the secret's hash are there.
        assert key_id.encode() in data
        assert hashlib.sha256(secret.encode()).hexdigest().encode() in data


def test_the_cache_stays_bounded_under_a_flood_of_unknown_keys(
    ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys_module, "CACHE_MAX_ENTRIES", 10)
    keys = ring.add_project("shop")
    for _ in range(50):
        assert ring.verify(generate_key(Role.WRITE)) is None
    assert len(ring._cache) <= 10
    assert ring.verify(keys.write_key) is not None
