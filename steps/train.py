"""Step `train`: softmax regression in numpy; weights saved as safetensors (never pickle).

The training split is read through the verifying loader: each shard of `data/processed` is
hashed as it is read and used only if it equals the manifest the `prepare` step signed (the
manifest's digest comes from prepare's link, checked with keys/data-eng.pub, not from the
manifest file on disk). A changed shard stops the step before training, and no link is written.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

import provenance
from provenance.datasets import Dataset, VerifiedShards, recorded_manifest
from provenance.links import link_filename
from provenance.signing import load_public_key

PROCESSED = Dataset("data/processed", streamed=True)
PREPARED_BY = "keys/data-eng.pub"  # who signs the dataset: the trust anchor of the loader
LINKS = Path(".provenance/links")
MODELS = Path("models")


def verified_arrays(*names: str) -> dict[str, np.ndarray]:
    """The named shards of data/processed, each checked against the manifest prepare signed."""
    link = LINKS / link_filename("prepare", load_public_key(PREPARED_BY).keyid)
    expected = recorded_manifest(str(link), PREPARED_BY, PROCESSED.manifest_path)
    shards = VerifiedShards(
        PROCESSED.manifest_path,
        PROCESSED.source,
        shards=[f"{name}.npy" for name in names],
        expect_sha256=expected,
    )
    return {
        shard.removesuffix(".npy"): np.load(io.BytesIO(data), allow_pickle=False)
        for shard, data in shards
    }


@provenance.step(
    "train",
    materials=[PROCESSED, "steps/train.py"],
    products=["models/**"],
    key="keys/trainer",
)
def train(epochs: int = 60, learning_rate: float = 0.5, seed: int = 0) -> None:
    data = verified_arrays("X_train", "y_train")
    x, y = data["X_train"], data["y_train"]
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
    try:
        train()
    except provenance.ProvenanceError as exc:
        sys.exit(f"train: {exc}")
