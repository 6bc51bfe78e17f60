"""The digits pipeline (steps/ and layouts/train.yaml) as a Kubeflow Pipelines pipeline.

Each component records itself as the in-toto step of its name; the KFP run id is the pipeline
run id; links go to ``LINKS/<run>/`` (a volume every component mounts, or an S3 prefix); the
last component gathers them, verifies them against the signed layout and, given an MLflow
tracking URI, promotes the model through the gate. Run locally (each component its own process)::

    from kfp import local
    local.init(runner=local.SubprocessRunner(use_venv=False))
    digits(raw_uri=..., links=..., keys=..., layout=..., layout_key=...)

KFP ships each component's body (not the module) to its process: the imports are inside.
No `from __future__ import annotations` here: KFP reads the annotations as types.
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output


@dsl.component
def prepare(
    raw: Input[Dataset], processed: Output[Dataset], run_id: str, links: str, keys: str
) -> None:
    """Split the raw digits CSV into train/test arrays (.npy, no pickle)."""
    import csv
    import gzip
    import os

    import numpy as np

    from provenance.integrations import kfp as prov

    def work() -> None:
        with gzip.open(raw.path, "rt", newline="") as f:
            rows = np.array([[float(v) for v in r] for r in csv.reader(f)], dtype=np.float32)
        features, labels = rows[:, :-1] / 16.0, rows[:, -1].astype(np.int64)
        order = np.random.default_rng(7).permutation(len(rows))
        n_test = int(len(rows) * 0.2)
        test, train = order[:n_test], order[n_test:]
        os.makedirs(processed.path, exist_ok=True)
        for name, array in (
            ("X_train", features[train]),
            ("y_train", labels[train]),
            ("X_test", features[test]),
            ("y_test", labels[test]),
        ):
            np.save(os.path.join(processed.path, f"{name}.npy"), array, allow_pickle=False)

    prov.record(
        "prepare",
        work,
        run_id=run_id,
        links=links,
        key=os.path.join(keys, "data-eng"),
        inputs={"data/raw/digits.csv.gz": raw},
        outputs={"data/processed": processed},
    )


@dsl.component
def train(
    processed: Input[Dataset], model: Output[Model], run_id: str, links: str, keys: str
) -> None:
    """Softmax regression in numpy; weights saved as safetensors."""
    import json
    import os

    import numpy as np
    from safetensors.numpy import save_file

    from provenance.integrations import kfp as prov

    def work() -> None:
        x = np.load(os.path.join(processed.path, "X_train.npy"), allow_pickle=False)
        y = np.load(os.path.join(processed.path, "y_train.npy"), allow_pickle=False)
        classes = int(y.max()) + 1
        weights = np.random.default_rng(0).normal(0, 0.01, (x.shape[1], classes))
        weights = weights.astype(np.float32)
        bias = np.zeros(classes, dtype=np.float32)
        onehot = np.eye(classes, dtype=np.float32)[y]
        for _ in range(60):
            logits = x @ weights + bias
            logits -= logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            probs /= probs.sum(axis=1, keepdims=True)
            grad = (probs - onehot) / len(x)
            weights -= 0.5 * (x.T @ grad)
            bias -= 0.5 * grad.sum(axis=0)
        os.makedirs(model.path, exist_ok=True)
        save_file({"weights": weights, "bias": bias}, os.path.join(model.path, "model.safetensors"))
        config = {"kind": "softmax-regression", "inputs": int(x.shape[1]), "classes": classes}
        with open(os.path.join(model.path, "config.json"), "w") as f:
            f.write(json.dumps(config, indent=2) + "\n")

    prov.record(
        "train",
        work,
        run_id=run_id,
        links=links,
        key=os.path.join(keys, "trainer"),
        inputs={"data/processed": processed},
        outputs={"models": model},
    )


@dsl.component
def evaluate(
    model: Input[Model],
    processed: Input[Dataset],
    metrics: Output[Artifact],
    run_id: str,
    links: str,
    keys: str,
) -> None:
    """Accuracy of the trained weights on the held-out split."""
    import json
    import os

    import numpy as np
    from safetensors.numpy import load_file

    from provenance.integrations import kfp as prov

    def work() -> None:
        tensors = load_file(os.path.join(model.path, "model.safetensors"))
        x = np.load(os.path.join(processed.path, "X_test.npy"), allow_pickle=False)
        y = np.load(os.path.join(processed.path, "y_test.npy"), allow_pickle=False)
        accuracy = float(((x @ tensors["weights"] + tensors["bias"]).argmax(axis=1) == y).mean())
        os.makedirs(metrics.path, exist_ok=True)
        with open(os.path.join(metrics.path, "metrics.json"), "w") as f:
            f.write(json.dumps({"accuracy": round(accuracy, 4), "test_examples": len(y)}) + "\n")

    prov.record(
        "evaluate",
        work,
        run_id=run_id,
        links=links,
        key=os.path.join(keys, "evaluator"),
        inputs={"models": model, "data/processed": processed},
        outputs={"metrics": metrics},
    )


@dsl.component
def verify(
    processed: Input[Dataset],
    model: Input[Model],
    metrics: Input[Artifact],
    run_id: str,
    links: str,
    layout: str,
    layout_key: str,
    tracking_uri: str = "",
    gate_key: str = "",
    model_name: str = "digits",
) -> None:
    """Gather the run's links, verify them, and promote the model when MLflow is configured."""
    from provenance.integrations import kfp as prov

    promotion = (
        prov.Promotion(model_name=model_name, tracking_uri=tracking_uri, gate_key=gate_key)
        if tracking_uri
        else None
    )
    result = prov.verify(
        run_id=run_id,
        links=links,
        layout=layout,
        layout_key=layout_key,
        artifacts={"data/processed": processed, "models": model, "metrics": metrics},
        promotion=promotion,
    )
    for verdict in result.verdicts():
        print(f"provenance: {verdict}")


@dsl.pipeline(name="digits")
def digits(
    raw_uri: str,
    links: str,
    keys: str,
    layout: str,
    layout_key: str,
    tracking_uri: str = "",
    gate_key: str = "",
    model_name: str = "digits",
) -> None:
    """prepare -> train -> evaluate -> verify (and promote).

    `links` is a directory every component mounts, or ``s3://bucket/prefix`` when they share
    no filesystem (the components then need the usual AWS_* settings).
    """
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    raw = dsl.importer(artifact_uri=raw_uri, artifact_class=Dataset, reimport=False)
    p = prepare(raw=raw.output, run_id=run_id, links=links, keys=keys)
    t = train(processed=p.outputs["processed"], run_id=run_id, links=links, keys=keys)
    e = evaluate(
        model=t.outputs["model"],
        processed=p.outputs["processed"],
        run_id=run_id,
        links=links,
        keys=keys,
    )
    verify(
        processed=p.outputs["processed"],
        model=t.outputs["model"],
        metrics=e.outputs["metrics"],
        run_id=run_id,
        links=links,
        layout=layout,
        layout_key=layout_key,
        tracking_uri=tracking_uri,
        gate_key=gate_key,
        model_name=model_name,
    )
