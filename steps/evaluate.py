"""Step `evaluate`: accuracy of the trained weights on the held-out split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

import provenance


@provenance.step(
    "evaluate",
    materials=[
        "models/**",
        "data/processed/X_test.npy",
        "data/processed/y_test.npy",
        "steps/evaluate.py",
    ],
    products=["metrics/**"],
    key="keys/evaluator",
)
def evaluate() -> float:
    tensors = load_file("models/model.safetensors")
    x = np.load("data/processed/X_test.npy", allow_pickle=False)
    y = np.load("data/processed/y_test.npy", allow_pickle=False)
    predictions = (x @ tensors["weights"] + tensors["bias"]).argmax(axis=1)
    accuracy = float((predictions == y).mean())
    Path("metrics").mkdir(exist_ok=True)
    Path("metrics/metrics.json").write_text(
        json.dumps({"accuracy": round(accuracy, 4), "test_examples": len(y)}, indent=2) + "\n"
    )
    return accuracy


if __name__ == "__main__":
    print(f"accuracy {evaluate():.3f}")
