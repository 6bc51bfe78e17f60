"""Serving side: fetch the champion model only if the gate verified exactly these files.

    MLFLOW_TRACKING_URI=... python examples/serve_verified_model.py digits keys/gate.pub serving/

The weights are read with safetensors (never pickle) after `load_verified` has re-hashed them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from safetensors.numpy import load_file

from provenance.gate import load_verified


def main(argv: list[str]) -> int:
    model, gate_key, dest = argv
    loaded = load_verified(f"models:/{model}@champion", dest, gate_key)
    tensors = load_file(str(Path(loaded.path) / "model.safetensors"))
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    print(f"serving {model} version {loaded.version}: {shapes}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
