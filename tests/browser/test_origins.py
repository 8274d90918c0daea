"""Which origins may send a project's events: `projects.<name>.allowed_origins` in kawa.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kawa.config import ConfigError, dump_config, load_config
from kawa.tracking import OriginPolicy, normalise_origin


def test_entries_are_written_the_way_browsers_send_origin() -> None:
    assert normalise_origin(" HTTPS://Shop.Example:443/ ") == "https://shop.example"
    assert normalise_origin("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert normalise_origin("http://[::1]:80") == "http://[::1]"
    assert normalise_origin("*") == "*"
    for bad in ("shop.example", "https://shop.example/checkout", "ftp://shop.example", "https://*"):
        with pytest.raises(ValueError, match="not an origin"):
            normalise_origin(bad)


def test_a_project_allows_its_origins_and_subdomain_patterns() -> None:
    policy = OriginPolicy({"shop": ["https://shop.example", "https://*.shop.example"], "api": []})
    assert policy.allows("shop", "https://shop.example")
    assert policy.allows("shop", "https://eu.shop.example") and policy.allows(
        "shop", "https://a.b.shop.example"
    )
    assert not policy.allows("shop", "http://shop.example")  # another scheme is another origin
    assert not policy.allows("shop", "https://evilshop.example")
    assert not policy.allows("shop", "https://shop.example.evil.example")
    assert not policy.allows("api", "https://shop.example")  # an empty list: no browser may send
    assert policy.allows_any("https://eu.shop.example") and not policy.allows_any("https://evil.example")


def test_without_a_list_any_origin_may_send() -> None:
    policy = OriginPolicy({"shop": None, "blog": ["https://blog.example"]})
    assert policy.allows("shop", "https://anywhere.example")
    assert not policy.allows("blog", "https://anywhere.example")
    assert policy.allows_any("https://anywhere.example")  # the preflight cannot tell the projects apart
    assert OriginPolicy({"shop": ["*"]}).allows("shop", "null")


def _config(tmp_path: Path, origins: object) -> Path:
    keys = {"write_key": "w", "read_key": "r", "admin_key": "a", "allowed_origins": origins}
    path = tmp_path / "kawa.yaml"
    path.write_text(yaml.safe_dump({"project": "shop", "projects": {"shop": keys}}))
    return path


def test_kawa_yaml_checks_the_origins_and_keeps_them(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, ["https://Shop.example/"]), env={})
    assert config.projects["shop"].allowed_origins == ["https://shop.example"]
    assert "allowed_origins:\n    - https://shop.example" in dump_config(config)
    with pytest.raises(ConfigError, match=r"'shop\.example' is not an origin.*https://shop\.example"):
        load_config(_config(tmp_path, ["shop.example"]), env={})


def test_a_project_without_origins_writes_no_setting(tmp_path: Path) -> None:
    path = tmp_path / "kawa.yaml"
    path.write_text(
        yaml.safe_dump({"projects": {"shop": {"write_key": "w", "read_key": "r", "admin_key": "a"}}})
    )
    assert "allowed_origins" not in dump_config(load_config(path, env={}))
