"""Recommendations: item-to-item collaborative filtering computed in the warehouse, evaluated on a holdout."""

from kawa.recommend.evaluate import Evaluation, evaluate
from kawa.recommend.fit import Fitted, fit
from kawa.recommend.options import Options

__all__ = ["Evaluation", "Fitted", "Options", "evaluate", "fit"]
