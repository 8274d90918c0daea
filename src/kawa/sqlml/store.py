"""SQL models in the registry: each CREATE MODEL registers the next version of the model; SQL reads
the newest version (BigQuery's semantics: the model is what the last CREATE made), while serving keeps
following the production alias until someone promotes a version. DROP MODEL removes a model made in SQL
with all its versions, aliases and files (`Registry.delete`: a model made again goes on numbering after
the dropped versions, so no version number ever names two bundles).
"""

from __future__ import annotations

from typing import Any

from kawa.models import ModelNotFoundError, Registry
from kawa.models.records import ModelVersion
from kawa.sqlml.errors import SQLModelError
from kawa.sqlml.model import SQLModel
from kawa.sqlml.train import Trained

SOURCE = "sql"  # `training["source"]` of versions made by CREATE MODEL


def newest(registry: Registry, project: str, name: str, where: str) -> SQLModel:
    """The newest version of model `name`; SQLModelError naming the project's models if there is none."""
    record = _newest_record(registry, project, name, where)
    if record is None:
        raise SQLModelError(f"{where}: {unknown(registry, project, name)}")
    bundle = registry.load(project, name, record.version)
    from_sql = record.training.get("source") == SOURCE
    model_type = record.params.get("model_type") if from_sql else None
    if model_type is None:
        model_type = "classifier" if bundle.task == "classification" else "regressor"
    return SQLModel(name, record.version, str(model_type), bundle, record.metrics, from_sql=from_sql)


def exists(registry: Registry, project: str, name: str, where: str) -> ModelVersion | None:
    """The newest version of `name`, None if there is no such model; SQLModelError if it is not a SQL
    model (CREATE OR REPLACE and DROP leave models of pipelines alone)."""
    record = _newest_record(registry, project, name, where)
    if record is not None and record.training.get("source") != SOURCE:
        raise SQLModelError(
            f"{where}: model {name!r} was registered by a pipeline or the Python API, not by CREATE MODEL; "
            "SQL does not replace or drop it. Pick another name"
        )
    return record


def register(registry: Registry, project: str, trained: Trained, options: dict[str, Any], query: str) -> int:
    """Register `trained` as the next version of its model; returns the version."""
    model = trained.model
    params = {"model_type": model.model_type, "options": options, **model.bundle.params()}
    training = {
        "source": SOURCE,
        "query": query,
        "rows": trained.training_rows,
        "evaluation_rows": trained.evaluation_rows,
        "dates": "DATE and TIMESTAMP inputs are days since 1970-01-01",
        "notes": trained.notes,
    }
    try:
        return registry.register(
            project, model.name, model.bundle, metrics=model.metrics, params=params, training=training,
            description=f"{model.model_type} model made with CREATE MODEL",
        )  # fmt: skip
    except ValueError as exc:  # a name the registry does not take
        raise SQLModelError(f"CREATE MODEL {model.name}: {exc}") from None


def _newest_record(registry: Registry, project: str, name: str, where: str) -> ModelVersion | None:
    try:
        return registry.show(project, name)
    except ModelNotFoundError:
        return None
    except ValueError as exc:
        raise SQLModelError(f"{where}: {exc}") from None


def unknown(registry: Registry, project: str, name: str) -> str:
    names = [m.name for m in registry.list_models(project)]
    known = f"its models: {', '.join(names)}" if names else "it has no models yet"
    return (
        f"no model {name!r} in project {project!r} ({known}); make one with "
        f"CREATE MODEL {name} OPTIONS (model_type = ...) AS SELECT ..."
    )
