"""The templates catalogue: every template declares what its module holds, README lists them all, and a
template copied into a project loads there as the project's own code, next to the others."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest
import yaml

import kawa.templates.catalog as catalog
from kawa.config import load_config
from kawa.pipelines import Pipeline
from kawa.project_code import load
from kawa.templates.catalog import TemplateError, install, markdown, project_source, templates, with_code_file

README = Path(__file__).resolve().parents[2] / "README.md"
# The use cases of the talks, as issue 9 and the earlier issues name them: each is a template.
USE_CASES = {"loyalty", "rfm", "forecast", "recommendations", "intent", "anomaly"}


def test_every_template_declares_what_its_module_holds() -> None:
    found = templates()
    assert set(found) >= USE_CASES
    for name, (template, module_name) in found.items():
        module = importlib.import_module(module_name)
        assert template.name == name and "\n" not in template.summary and len(template.summary) < 120
        for pipeline in template.pipelines:
            assert isinstance(module.__dict__.get(pipeline), Pipeline), f"{name}: {pipeline}"
            assert module.__dict__[pipeline].name == pipeline
        for extra in template.extras:
            assert hasattr(type(module.__dict__.get(extra)), "__kawa_kind__"), f"{name}: {extra}"


def test_readme_lists_every_template_as_the_catalogue_says() -> None:
    text = README.read_text()
    listed = re.search(r"<!-- templates:[^>]*-->\n(.*?)<!-- /templates -->", text, re.DOTALL)
    assert listed is not None, "README.md has no Templates list between <!-- templates --> markers"
    assert listed.group(1) == markdown(), (
        "README.md's Templates list is out of date: replace it with the output of `kawa templates --markdown`"
    )
    assert all(f"- `{name}`: " in listed.group(1) for name in templates())


def test_every_template_copied_into_one_project_loads_there(tmp_path: Path) -> None:
    config = tmp_path / "kawa.yaml"
    config.write_text("project: shop\n")
    for name in sorted(templates()):
        source = project_source(name)
        assert source.startswith(f"# The {name} template, copied from kawa.templates.")
        assert "TEMPLATE" not in source and "kawa.templates.catalog" not in source
        compile(source, f"{name}.py", "exec")
        installed = install(name, config)
        assert installed.path == tmp_path / f"{name}.py" and installed.listed
    assert load_config(config).code == [
        "features.py",
        "pipelines.py",
        *(f"{n}.py" for n in sorted(templates())),
    ]
    found = load(load_config(config))
    for template, module_name in templates().values():
        assert set(template.pipelines) <= set(found["pipeline"])
        module = importlib.import_module(module_name)
        for extra in template.extras:  # the copy declares it too, under its kind and name
            obj = getattr(module, extra)
            assert obj.name in found[type(obj).__kawa_kind__], f"{template.name}: {extra}"


def test_a_copy_is_not_overwritten_without_force(tmp_path: Path) -> None:
    config = tmp_path / "kawa.yaml"
    config.write_text("project: shop\n")
    install("rfm", config)
    edited = (tmp_path / "rfm.py").read_text().replace('"num_clusters": 4', '"num_clusters": 6')
    (tmp_path / "rfm.py").write_text(edited)
    with pytest.raises(TemplateError, match=r"rfm\.py exists already; pass --force"):
        install("rfm", config)
    assert (tmp_path / "rfm.py").read_text() == edited
    again = install("rfm", config, force=True)
    assert again.replaced and not again.listed  # listed already
    assert (tmp_path / "rfm.py").read_text() == project_source("rfm")
    assert load_config(config).code.count("rfm.py") == 1


def test_a_template_that_clashes_with_the_project_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "kawa.yaml"
    config.write_text("project: shop\n# our settings\ncode:\n  - pipelines.py\n")
    (tmp_path / "pipelines.py").write_text("from kawa.templates.rfm import rfm  # noqa: F401\n")
    before = config.read_text()
    with pytest.raises(
        TemplateError, match="does not fit this project, so nothing was changed: two pipelines"
    ) as refused:
        install("rfm", config)
    assert str(refused.value).endswith("drop the import of kawa.templates.rfm from the other file")
    assert config.read_text() == before and not (tmp_path / "rfm.py").exists()
    with pytest.raises(TemplateError, match=r"no template named 'nope'; templates: .*forecast"):
        install("nope", config)


def test_kawa_yaml_keeps_its_comments_when_a_code_file_is_added() -> None:
    root = Path(".")
    block = "project: shop  # ours\ncode:\n  - pipelines.py\nstores:\n  online: lmdb\n"
    added = with_code_file(block, "rfm.py", ["pipelines.py"], root)
    assert added == "project: shop  # ours\ncode:\n  - pipelines.py\n  - rfm.py\nstores:\n  online: lmdb\n"
    missing = with_code_file("# a comment\nproject: shop", "rfm.py", ["features.py", "pipelines.py"], root)
    assert missing.startswith("# a comment\nproject: shop\n")
    assert yaml.safe_load(missing)["code"] == ["features.py", "pipelines.py", "rfm.py"]
    flow = with_code_file("code: [a.py]\nproject: shop\n", "rfm.py", ["a.py"], root)
    assert yaml.safe_load(flow) == {"code": ["a.py", "rfm.py"], "project": "shop"}
    assert with_code_file(block, "rfm.py", ["pipelines.py", "./rfm.py"], root) == block
    with pytest.raises(TemplateError, match="mapping at the top level"):
        with_code_file("- a\n", "rfm.py", [], root)


def test_the_docstring_examples_run() -> None:
    result = doctest.testmod(catalog)
    assert result.attempted > 0 and result.failed == 0
