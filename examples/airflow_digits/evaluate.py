"""Evaluate the digits model (run by `provenance run evaluate ... -- python evaluate.py`)."""

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

tensors = load_file("models/model.safetensors")
x = np.load("data/processed/X_test.npy", allow_pickle=False)
y = np.load("data/processed/y_test.npy", allow_pickle=False)
accuracy = float(((x @ tensors["weights"] + tensors["bias"]).argmax(axis=1) == y).mean())
Path("metrics").mkdir(exist_ok=True)
Path("metrics/metrics.json").write_text(
    json.dumps({"accuracy": round(accuracy, 4), "test_examples": len(y)}, indent=2) + "\n"
)
print(f"accuracy {accuracy:.3f}")
