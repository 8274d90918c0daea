"""A notebook beside a project folder: its embedded stores opened directly, as the `kawa` CLI opens them.

Reading works while `kawa serve` runs on the same folder: SQL reads the lake's Parquet files, and the
metadata and online stores take readers and writers from several processes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kawa.config import Config
from kawa.notebook import _html, _rows
from kawa.notebook.models import Model, ModelList
from kawa.notebook.results import Predictions, Result, StoredPrediction
from kawa.notebook.runs import Run, RunList, print_step
from kawa.runtime import Runtime

if TYPE_CHECKING:
    from kawa.features import FeatureView, Label
    from kawa.models import Registry
    from kawa.pipelines import Pipeline, RunEvent

DEFAULT_EXPERIMENT = "notebook"


class LocalProject:
    """A kawa project opened from its folder; close it (or use `with`) when done.

    >>> k = kawa.connect()  # doctest: +SKIP
    >>> k.sql("SELECT event_name, count(*) AS n FROM events GROUP BY 1").df()  # doctest: +SKIP
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.project = config.project
        self.runtime = Runtime(config)
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        """The model registry over the project's metadata and artifact stores (opened on first use)."""
        if self._registry is None:
            from kawa.models import Registry

            self._registry = Registry.from_runtime(self.runtime)
        return self._registry

    # -- the warehouse ------------------------------------------------------------------------------

    def sql(self, query: str, *, limit: int | None = None) -> Result:
        """Run SQL on the project's warehouse (CREATE MODEL and ML.* calls too); at most `limit` rows."""
        from kawa import sqlml

        warehouse = self.runtime.warehouse()
        if sqlml.mentions_models(query):
            table = sqlml.run(warehouse, self.registry, query, limit=limit)
        else:
            table = warehouse.query(query, limit=limit)
        return Result(table)

    def tables(self) -> list[str]:
        """The project's warehouse tables."""
        return self.runtime.warehouse().tables()

    # -- features ----------------------------------------------------------------------------------

    def training_set(
        self,
        label: Label | str | Any,
        features: FeatureView | str | Sequence[FeatureView | str],
        *,
        cutoffs: Sequence[datetime | str] | None = None,
    ) -> Result:
        """Every label row with the features known before its cutoff (point-in-time correct).

        `label` is a Label, the name of one in the project's code, or a table of label rows with a
        `cutoff` column and each view's entity column; `features` a FeatureView, the name of one, or a
        list of them. `cutoffs` replaces a Label's own cutoffs (see kawa.features.series).
        """
        from kawa.features import FeatureError, Label, training_set

        warehouse = self.runtime.warehouse()
        if isinstance(label, str):
            label = self._code("label", label)
        if isinstance(label, Label):
            labels = label.rows(warehouse, cutoffs) if cutoffs is not None else label
        elif cutoffs is not None:
            raise FeatureError("cutoffs= goes with a Label; a table of label rows has its own cutoff column")
        else:
            labels = _rows.to_arrow(label, "label rows")
        views = [features] if isinstance(features, str) or not isinstance(features, Sequence) else features
        found = [self._code("feature_view", v) if isinstance(v, str) else v for v in views]
        names = ", ".join(v.name for v in found)
        return Result(training_set(warehouse, labels, found), title=f"training set: {names}")

    def _code(self, kind: str, name: str) -> Any:
        """The `kind` object called `name` in the project's code files (`code` in kawa.yaml)."""
        from kawa.project_code import load

        found = load(self.config).get(kind, {})
        if name not in found:
            what = kind.replace("_", " ")
            known = ", ".join(sorted(found)) or "none"
            raise LookupError(
                f"no {what} named {name!r} in {', '.join(self.config.code)} under {self.config.root}; "
                f"{what}s there: {known}. Pass the object itself, e.g. kawa.features.presets.RFM"
            )
        return found[name]

    # -- models ------------------------------------------------------------------------------------

    def register(
        self,
        name: str,
        model: Any,
        *,
        data: Any = None,
        label: str | None = None,
        features: Sequence[str] | None = None,
        holdout: Any = None,
        metrics: Mapping[str, Any] | None = None,
        description: str | None = None,
        promote: str | None = None,
        **fit_options: Any,
    ) -> Model:
        """Register a Bundle, or an estimator fitted (a copy of it) by Bundle.fit on `data` and `label`.

        `features` are the columns the model reads (default: every column but the label); `holdout`
        rows are scored into the version's metrics; `promote` points that alias (e.g. "production")
        at the new version.
        """
        from kawa.models import Bundle, BundleError

        if isinstance(model, Bundle):
            if data is not None or fit_options:
                raise BundleError("a Bundle is already trained; leave out data= and the fit options")
            bundle = model
        else:
            if data is None or label is None:
                raise BundleError(
                    f"to register a {type(model).__name__}, give the rows to fit it on and their label: "
                    "k.register(name, estimator, data=train, label='label'); or register a kawa Bundle"
                )
            table = _rows.to_arrow(data, "data")
            bundle = Bundle.fit(table, label=label, estimator=model, features=features, **fit_options)
        training: dict[str, Any] = {"label": bundle.label, "source": "notebook"}
        if data is not None:
            training["rows"] = table.num_rows
        found = dict(metrics or {})
        if holdout is not None:
            scored = _rows.to_arrow(holdout, "holdout")
            found = {**bundle.evaluate(scored), **found}
            training["holdout_rows"] = scored.num_rows
        version = self.registry.register(
            self.project, name, bundle, metrics=found, training=training, description=description
        )
        if promote:
            self.registry.promote(self.project, name, version, promote)
        return self.model(name, version)

    def models(self) -> ModelList:
        """The project's models with their newest version and aliases."""
        return ModelList(self.registry.list_models(self.project))

    def model(self, name: str, version: int | None = None) -> Model:
        """One version of a model (the newest when `version` is None)."""
        return Model(self.registry.show(self.project, name, version))

    def predict(
        self, model: str, rows: Any, *, version: int | None = None, alias: str = "production"
    ) -> Predictions:
        """Predictions of `model` (at `alias`, or `version`) for a dict, a list of dicts or a table."""
        from kawa.serving.online import predict

        if _rows.is_table(rows):
            table = _rows.to_arrow(rows)
            if version is None:
                version = self.registry.resolve(self.project, model, alias)
            bundle = self.registry.load(self.project, model, version)
            scored = bundle.predict_table(table)
            values = (
                [dict(zip(bundle.classes, r, strict=True)) for r in scored.tolist()]
                if scored.ndim == 2
                else scored.tolist()
            )
            return Predictions(model, version, table, values)
        given = _rows.to_rows(rows)
        answer = predict(self.registry, self.project, model, given, version=version, alias=alias)
        one = isinstance(given, Mapping)
        values = [answer["prediction"]] if one else answer["predictions"]
        table = _rows.to_arrow([given] if one else given)
        return Predictions(model, answer["version"], table, values)

    def prediction(self, model: str, entity: str) -> StoredPrediction:
        """The newest stored prediction of `model` for `entity` (batch or real-time), as the product
        reads it."""
        from kawa.serving.store import PredictionStore

        found = PredictionStore(self.runtime.online).get(self.project, model, entity)
        if found is None:
            raise LookupError(
                f"no stored prediction of model {model!r} for {entity!r} in project {self.project!r}; "
                "a batch prediction (e.g. the pipeline that scores users) publishes them"
            )
        return StoredPrediction(model, entity, **{f: getattr(found, f) for f in found.__struct_fields__})

    # -- pipelines ---------------------------------------------------------------------------------

    def run(
        self,
        pipeline: str | Pipeline,
        *,
        experiment: str = DEFAULT_EXPERIMENT,
        in_process: bool | None = None,
        cache: bool = True,
        progress: bool = True,
        force: bool = False,
        **params: Any,
    ) -> Run:
        """Run a pipeline of the project's code (by name) or a Pipeline object, and return its record.

        Keyword arguments override the pipeline's parameters. Steps run as `kawa pipeline run` runs
        them (a process each, or on Ray), unless `in_process=True` or a step is defined in the notebook
        itself (those can only run in this process). `progress` prints each step as it ends. While the
        pipeline already runs `max_active_runs` runs, RunLimitReached says which, unless `force`.
        """
        from kawa.pipelines import InProcessExecutor, executor_for, find_pipeline, run_pipeline

        found = find_pipeline(self.config, pipeline) if isinstance(pipeline, str) else pipeline
        if in_process is None:
            in_process = any(_defined_here(s.fn) for s in found.steps)
        executor = InProcessExecutor() if in_process else executor_for(self.config)
        record = run_pipeline(
            self.runtime,
            found,
            params,
            experiment=experiment,
            project=self.project,
            executor=executor,
            on_event=_printer if progress else None,
            force=force,
        )
        return Run(self._run_store().get(record.run_id) or record)

    def runs(self, pipeline: str | None = None, *, limit: int = 20) -> RunList:
        """The newest runs of the project (of one pipeline when named)."""
        return RunList(self._run_store().list(self.project, pipeline=pipeline, limit=limit))

    def _run_store(self) -> Any:
        from kawa.pipelines import RunStore

        return RunStore(self.runtime.metadata)

    # -- lifetime ----------------------------------------------------------------------------------

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
            self._registry = None
        self.runtime.close()

    def __enter__(self) -> LocalProject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _repr_html_(self) -> str:
        pairs = [
            ("project", self.project),
            ("folder", self.config.root),
            ("stores", "opened from the folder"),
        ]
        return _html.block(_html.Html("<strong>kawa</strong> (local)"), _html.fields(pairs))

    def __repr__(self) -> str:
        return f"<kawa project {self.project!r} at {self.config.root}>"


def _defined_here(fn: Any) -> bool:
    """Whether a step lives in the notebook (or inside a function), where a step process cannot import it."""
    return getattr(fn, "__module__", "__main__") == "__main__" or "<locals>" in getattr(
        fn, "__qualname__", ""
    )


def _printer(event: RunEvent) -> None:
    if event.kind == "run_started":
        print(f"run {event.run_id} of pipeline {event.pipeline}", flush=True)
    elif event.kind == "step_finished" and event.step is not None:
        print_step(event.step, event.status or "", event.duration_s)
