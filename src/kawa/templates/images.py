"""An image classifier whose bundle takes the picture itself: clients POST {"image": "<base64 PNG>"}.

The all-in-one model holds its image preprocessing: the predict API decodes the base64 file, checks
its size, converts it to grey levels, resizes it to `size` x `size` pixels and scales each pixel to
[0, 1] before the network sees it (kawa.models.images); a malformed, non-image or oversized upload is
refused with a 422 naming the field. So the client sends the file it has, nothing else.

Out of the box it learns circles from squares on pictures it draws itself (no downloads): each one a
light shape of random size, brightness and place on a dark, noisy 64 x 64 canvas. Point `query` at a
warehouse table instead (columns `image`: the file as bytes or base64 text, `label`: its class) to
train on your own pictures.

Steps: the labelled images -> a random, class-stratified `holdout` share kept apart -> a small neural
network (scikit-learn's MLPClassifier, one hidden layer of `hidden` units, CPU only) and a baseline,
logistic regression on the same pixels, both fitted on the rest -> holdout accuracy and AUC side by
side -> registered, and promoted to `promote_to` when it beats the baseline's accuracy.

Use it in a project's pipelines.py: `from kawa.templates.images import image_classifier`; run
it with `kawa pipeline run image_classifier` (e.g. `-p count=4000`), then predict:

    curl -H "Authorization: Bearer $READ_KEY" -d '{"image": "iVBORw0KGgo..."}' \\
        http://127.0.0.1:8000/v1/models/shapes/predict
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kawa.models import Bundle, Image
from kawa.pipelines import Pipeline, RunContext, step
from kawa.templates.catalog import Template

MODEL = "shapes"
LABEL = "label"
SHAPES = ("circle", "square")
CANVAS = 64  # the drawn pictures' width and height, in pixels


def shape_png(shape: str, rng: np.random.Generator, *, canvas: int = CANVAS, jitter: float = 0.2) -> bytes:
    """A PNG of one light `shape` ("circle" or "square") on a dark, noisy square canvas: its radius
    is 20-40% of the canvas, its centre up to `jitter` of the canvas away from the middle."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    if shape not in SHAPES:
        raise ValueError(f"shape {shape!r} is not one of {', '.join(SHAPES)}")
    background, light = int(rng.integers(0, 90)), int(rng.integers(150, 256))
    picture = PILImage.new("L", (canvas, canvas), background)
    radius = rng.uniform(0.2, 0.4) * canvas
    cx, cy = canvas / 2 + rng.uniform(-jitter, jitter, 2) * canvas
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    draw = ImageDraw.Draw(picture)
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=light)
    noisy = np.asarray(picture, dtype=np.float64) + rng.normal(0.0, 12.0, (canvas, canvas))
    out = io.BytesIO()
    PILImage.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def shape_table(count: int, seed: int) -> pa.Table:
    """`count` drawn pictures as (image: PNG bytes, label: shape), the shapes in random order."""
    if count < 20:
        raise ValueError(f"count={count} is too few pictures to learn from; draw at least 20")
    rng = np.random.default_rng(seed)
    labels = [SHAPES[i] for i in rng.integers(0, len(SHAPES), count)]
    pictures = [shape_png(label, rng) for label in labels]
    return pa.table({"image": pa.array(pictures, pa.binary()), LABEL: pa.array(labels, pa.string())})


@step
def images(ctx: RunContext, query: str, count: int, seed: int) -> pa.Table:
    """The labelled pictures: `query`'s rows (columns image and label), or `count` drawn shapes."""
    if query:
        table = ctx.warehouse.query(query)
        missing = [c for c in ("image", LABEL) if c not in table.column_names]
        if missing:
            raise ValueError(
                f"query returns {', '.join(table.column_names)} but not {', '.join(missing)}; it must "
                "return image (the file as bytes or base64 text) and label (its class); rename with AS"
            )
        table = table.select(["image", LABEL]).filter(pc.is_valid(table.column(LABEL)))
    else:
        table = shape_table(count, seed)
    classes = pc.count_distinct(table.column(LABEL)).as_py()
    if classes < 2:
        raise ValueError(f"the {table.num_rows} labelled images hold {classes} class; a classifier needs two")
    ctx.log_metric("images", table.num_rows)
    ctx.log_metric("classes", classes)
    return table


def split(table: pa.Table, holdout: float, seed: int) -> tuple[pa.Table, pa.Table]:
    """(training rows, holdout rows): a `holdout` share of each class, drawn at random."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout={holdout}: use a share between 0 and 1, such as 0.25")
    labels = table.column(LABEL).to_numpy(zero_copy_only=False)
    train, test = train_test_split(
        np.arange(table.num_rows), test_size=holdout, random_state=seed, stratify=labels
    )
    return table.take(pa.array(np.sort(train))), table.take(pa.array(np.sort(test)))


@step(memory="2GB")
def trained(
    ctx: RunContext, images: pa.Table, size: int, hidden: int, holdout: float, seed: int
) -> dict[str, Any]:
    """The network and the pixel-wise logistic regression, fitted on the training share and compared
    on the holdout."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    train, test = split(images, holdout, seed)
    kinds = {"image": Image(size=(size, size), mode="L")}
    network = MLPClassifier(
        (hidden,), alpha=1e-3, max_iter=500, early_stopping=True, n_iter_no_change=15, random_state=seed
    )
    # These matrices are small: one BLAS thread is several times faster than threads contending for cores.
    with threadpool_limits(limits=1, user_api="blas"):
        model = Bundle.fit(train, label=LABEL, estimator=network, kinds=kinds)
        baseline = Bundle.fit(train, label=LABEL, estimator=LogisticRegression(max_iter=3000), kinds=kinds)
    metrics = model.evaluate(test)
    base = baseline.evaluate(test)
    for name in ("accuracy", "auc", "log_loss"):
        metrics[f"baseline_{name}"] = base.get(name)
    print(f"{'holdout':<12}{'network':>10}{'baseline':>10}")
    for name in ("accuracy", "auc", "log_loss"):
        value, other = metrics.get(name), metrics[f"baseline_{name}"]
        if isinstance(value, float) and isinstance(other, float):
            print(f"{name:<12}{value:>10.3f}{other:>10.3f}")
            ctx.log_metric(name, value)
            ctx.log_metric(f"baseline_{name}", other)
    ctx.log_metric("train_rows", train.num_rows)
    ctx.log_metric("holdout_rows", test.num_rows)
    return {"model": model, "metrics": metrics, "train_rows": train.num_rows}


@step
def registered(ctx: RunContext, trained: dict[str, Any], promote_to: str) -> dict[str, Any]:
    """Register the network; point `promote_to` at it only if it beats the baseline's accuracy."""
    metrics = trained["metrics"]
    version = ctx.register_model(
        MODEL,
        trained["model"],
        metrics=metrics,
        params={**ctx.params, "train_rows": trained["train_rows"]},
        training={
            "label": "the picture's class",
            "features": "the picture, decoded and resized inside the bundle",
            "baseline": "logistic regression on the same pixels",
        },
    )
    accuracy, baseline = metrics.get("accuracy"), metrics.get("baseline_accuracy")
    beats = isinstance(accuracy, float) and isinstance(baseline, float) and accuracy > baseline
    if promote_to and beats:
        ctx.registry.promote(ctx.project, MODEL, version, promote_to)
    elif promote_to:
        print(f"not promoted: holdout accuracy {accuracy} does not beat the baseline's {baseline}")
    return {"version": version, "promoted": bool(promote_to and beats)}


image_classifier = Pipeline(
    "image_classifier",
    steps=[images, trained, registered],
    params={
        "query": "",
        "count": 3000,
        "seed": 0,
        "size": 16,
        "hidden": 64,
        "holdout": 0.25,
        "promote_to": "production",
    },
    description="Image classifier served from base64 pictures: circles vs squares, decoded in the bundle",
)

TEMPLATE = Template(
    name="image_classifier",
    summary="pictures sent as base64 JSON, decoded and resized inside the bundle: a CPU network on shapes",
    pipelines=("image_classifier",),
)
