"""MLflow side of the online benchmark; runs inside benchmarks/.peers/mlflow, never imports kawa.

Reads JSON on stdin: {"train": parquet path, "model_dir": where to save, "numeric": [...],
"categorical": [...], "sample": parquet path}. Fits the scikit-learn pipeline with kawa's preprocessing
(median fill with missing flags and scaling for numbers, one-hot for categories, LogisticRegression)
on the same training rows as kawa's bundle, saves it with `mlflow.sklearn.save_model` so that
`mlflow models serve` answers predict_proba, and prints JSON with its probabilities for the sample rows.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    args = json.loads(sys.stdin.read())
    numeric, categorical = args["numeric"], args["categorical"]
    train = pd.read_parquet(args["train"])
    # Whole numbers travel as JSON integers but may be NULL in general: serve every number as a double.
    x = train[numeric + categorical].astype({c: "float64" for c in numeric})
    numbers = Pipeline(
        [("fill", SimpleImputer(strategy="median", add_indicator=True)), ("scale", StandardScaler())]
    )
    prep = ColumnTransformer(
        [("num", numbers, numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)],
        sparse_threshold=0.0,
    )
    model = Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=500))])
    model.fit(x, train["label"])
    mlflow.sklearn.save_model(
        model,
        args["model_dir"],
        signature=infer_signature(x.head(100), model.predict_proba(x.head(100))),
        pyfunc_predict_fn="predict_proba",
        # MLflow 3 saves scikit-learn models with skops and asks for the types to trust by name.
        skops_trusted_types=["numpy.dtype"],
    )
    sample = pd.read_parquet(args["sample"])[numeric + categorical].astype({c: "float64" for c in numeric})
    print(
        json.dumps(
            {"sample_scores": model.predict_proba(sample)[:, 1].tolist(), "mlflow": mlflow.__version__}
        )
    )


if __name__ == "__main__":
    main()
