"""Step `prepare`: split the raw digits dataset into train/test arrays (.npy, no pickle).

Its product is the dataset `data/processed`, recorded as one manifest artifact (every member's
path, size and sha256) rather than one link entry per file: the later steps are held to it.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np

import provenance
from provenance.datasets import Dataset

RAW = Path("data/raw/digits.csv.gz")
OUT = Path("data/processed")


@provenance.step(
    "prepare",
    materials=["data/raw/**", "steps/prepare.py"],
    products=[Dataset("data/processed")],
    key="keys/data-eng",
)
def prepare(test_fraction: float = 0.2, seed: int = 7) -> None:
    with gzip.open(RAW, "rt", newline="") as f:
        rows = np.array([[float(v) for v in row] for row in csv.reader(f)], dtype=np.float32)
    features, labels = rows[:, :-1] / 16.0, rows[:, -1].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(rows))
    n_test = int(len(rows) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    OUT.mkdir(parents=True, exist_ok=True)
    for name, array in (
        ("X_train", features[train]),
        ("y_train", labels[train]),
        ("X_test", features[test]),
        ("y_test", labels[test]),
    ):
        np.save(OUT / f"{name}.npy", array, allow_pickle=False)


if __name__ == "__main__":
    prepare()
