"""Step `train`: softmax regression in numpy; weights saved as safetensors (never pickle)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

import provenance

DATA = Path("data/processed")
MODELS = Path("models")


@provenance.step(
    "train",
    materials=["data/processed/**", "steps/train.py"],
    products=["models/**"],
    key="keys/trainer",
)
def train(epochs: int = 60, learning_rate: float = 0.5, seed: int = 0) -> None:
    x = np.load(DATA / "X_train.npy", allow_pickle=False)
    y = np.load(DATA / "y_train.npy", allow_pickle=False)
    classes = int(y.max()) + 1
    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 0.01, (x.shape[1], classes)).astype(np.float32)
    bias = np.zeros(classes, dtype=np.float32)
    onehot = np.eye(classes, dtype=np.float32)[y]
    for _ in range(epochs):
        logits = x @ weights + bias
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        grad = (probs - onehot) / len(x)
        weights -= learning_rate * (x.T @ grad)
        bias -= learning_rate * grad.sum(axis=0)
    MODELS.mkdir(parents=True, exist_ok=True)
    save_file({"weights": weights, "bias": bias}, str(MODELS / "model.safetensors"))
    config = {"kind": "softmax-regression", "inputs": int(x.shape[1]), "classes": classes}
    (MODELS / "config.json").write_text(json.dumps(config, indent=2) + "\n")


if __name__ == "__main__":
    train()
