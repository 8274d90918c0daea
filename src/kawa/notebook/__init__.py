"""kawa in a notebook: `k = kawa.connect()`, then SQL to DataFrames, training sets, models, runs and
predictions, each shown as a table in Jupyter.

    import kawa
    k = kawa.connect()                      # the project whose kawa.yaml is here or above
    k.sql("SELECT * FROM events LIMIT 5").df()
    k.run("loyalty", weeks=3)
    k.prediction("loyalty", "u_00042")

See docs/notebook.md.
"""

from __future__ import annotations

from kawa.notebook.connect import connect
from kawa.notebook.local import LocalProject
from kawa.notebook.models import Model, ModelList
from kawa.notebook.remote import RemoteProject
from kawa.notebook.results import Predictions, Result, StoredPrediction
from kawa.notebook.runs import Run, RunList

__all__ = [
    "LocalProject",
    "Model",
    "ModelList",
    "Predictions",
    "RemoteProject",
    "Result",
    "Run",
    "RunList",
    "StoredPrediction",
    "connect",
]
