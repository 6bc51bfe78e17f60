"""Step `evaluate`: accuracy of the trained weights on the held-out split.

The test split is read like the training split (steps/train.py): through the verifying loader,
held to the manifest the `prepare` step signed.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

import provenance
from provenance.datasets import Dataset, VerifiedShards, recorded_manifest
from provenance.links import link_filename
from provenance.signing import load_public_key

PROCESSED = Dataset("data/processed", streamed=True)
PREPARED_BY = "keys/data-eng.pub"  # who signs the dataset: the trust anchor of the loader
LINKS = Path(".provenance/links")


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
    "evaluate",
    materials=["models/**", PROCESSED, "steps/evaluate.py"],
    products=["metrics/**"],
    key="keys/evaluator",
)
def evaluate() -> float:
    tensors = load_file("models/model.safetensors")
    data = verified_arrays("X_test", "y_test")
    x, y = data["X_test"], data["y_test"]
    predictions = (x @ tensors["weights"] + tensors["bias"]).argmax(axis=1)
    accuracy = float((predictions == y).mean())
    Path("metrics").mkdir(exist_ok=True)
    Path("metrics/metrics.json").write_text(
        json.dumps({"accuracy": round(accuracy, 4), "test_examples": len(y)}, indent=2) + "\n"
    )
    return accuracy


if __name__ == "__main__":
    try:
        print(f"accuracy {evaluate():.3f}")
    except provenance.ProvenanceError as exc:
        sys.exit(f"evaluate: {exc}")
