"""The digits pipeline (steps/ and layouts/train.yaml) as an Airflow DAG.

prepare and train are TaskFlow tasks recorded with `provenance.integrations.airflow.step`;
evaluate is a BashOperator running ``provenance run`` (`bash_step`); verify gathers the DAG
run's links, verifies them against the signed layout and, given a `Promotion`, registers the
model in MLflow and promotes it through the gate. Each task runs in its own process (any
executor); the DAG run id is the pipeline run id; links go to ``LINKS/<run>/`` (a shared
directory, or ``s3://bucket/prefix`` when the workers share no filesystem).

In a DAG file::

    from examples.airflow_digits.dag import digits_dag
    from provenance.integrations.airflow import Promotion

    digits_dag("digits", project="/srv/digits", links="/shared/provenance-links",
               promotion=Promotion(model_name="digits", tracking_uri="http://mlflow:5000",
                                   gate_key="/secrets/gate"))

`project` holds data/raw/digits.csv.gz, keys/ and root.layout (signed layouts/train.yaml).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from provenance.integrations import airflow as prov

HERE = os.path.dirname(os.path.abspath(__file__))


def _prepare(project: str) -> None:
    import csv
    import gzip

    import numpy as np

    with gzip.open(os.path.join(project, "data/raw/digits.csv.gz"), "rt", newline="") as f:
        rows = np.array([[float(v) for v in r] for r in csv.reader(f)], dtype=np.float32)
    features, labels = rows[:, :-1] / 16.0, rows[:, -1].astype(np.int64)
    order = np.random.default_rng(7).permutation(len(rows))
    n_test = int(len(rows) * 0.2)
    test, train = order[:n_test], order[n_test:]
    out = os.path.join(project, "data/processed")
    os.makedirs(out, exist_ok=True)
    for name, array in (
        ("X_train", features[train]),
        ("y_train", labels[train]),
        ("X_test", features[test]),
        ("y_test", labels[test]),
    ):
        np.save(os.path.join(out, f"{name}.npy"), array, allow_pickle=False)


def _train(project: str) -> None:
    import json

    import numpy as np
    from safetensors.numpy import save_file

    data = os.path.join(project, "data/processed")
    x = np.load(os.path.join(data, "X_train.npy"), allow_pickle=False)
    y = np.load(os.path.join(data, "y_train.npy"), allow_pickle=False)
    classes = int(y.max()) + 1
    weights = np.random.default_rng(0).normal(0, 0.01, (x.shape[1], classes)).astype(np.float32)
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
    models = os.path.join(project, "models")
    os.makedirs(models, exist_ok=True)
    save_file({"weights": weights, "bias": bias}, os.path.join(models, "model.safetensors"))
    config = {"kind": "softmax-regression", "inputs": int(x.shape[1]), "classes": classes}
    with open(os.path.join(models, "config.json"), "w") as f:
        f.write(json.dumps(config, indent=2) + "\n")


def digits_dag(
    dag_id: str,
    *,
    project: str,
    links: str,
    between_train_and_evaluate: Any = None,
    schedule: str | None = None,
    promotion: prov.Promotion | None = None,
) -> DAG:
    """prepare -> train -> evaluate -> verify (and promote, given `promotion`).

    `between_train_and_evaluate` is an extra task factory (the tests put an unrecorded task
    there).
    """
    keys = os.path.join(project, "keys")
    with DAG(
        dag_id, schedule=schedule, start_date=pendulum.datetime(2024, 1, 1), catchup=False
    ) as d:

        @task(task_id="prepare")
        @prov.step(
            "prepare",
            key=os.path.join(keys, "data-eng"),
            links=links,
            materials={"data/raw/digits.csv.gz": os.path.join(project, "data/raw/digits.csv.gz")},
            products={"data/processed": os.path.join(project, "data/processed")},
        )
        def prepare() -> None:
            _prepare(project)

        @task(task_id="train")
        @prov.step(
            "train",
            key=os.path.join(keys, "trainer"),
            links=links,
            materials={"data/processed": os.path.join(project, "data/processed")},
            products={"models": os.path.join(project, "models")},
        )
        def train() -> None:
            _train(project)

        evaluate = prov.bash_step(
            "evaluate",
            f"{sys.executable} {os.path.join(HERE, 'evaluate.py')}",
            key=os.path.join(keys, "evaluator"),
            links=links,
            cwd=project,
            materials=["models/**", "data/processed/**"],
            products=["metrics/**"],
        )

        @task(task_id="verify")
        def verify() -> None:
            result = prov.verify(
                links=links,
                layout=os.path.join(project, "root.layout"),
                layout_key=os.path.join(keys, "owner.pub"),
                artifacts={
                    name: os.path.join(project, name)
                    for name in ("data/processed", "models", "metrics")
                },
                promotion=promotion,
            )
            for verdict in result.verdicts():
                print(f"provenance: {verdict}")

        trained = prepare() >> train()
        if between_train_and_evaluate is not None:
            trained = trained >> between_train_and_evaluate()
        trained >> evaluate >> verify()
    return d
