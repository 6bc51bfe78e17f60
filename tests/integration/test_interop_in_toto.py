"""Links written by the decorator and by `provenance run` verify with the upstream in-toto-verify."""

from __future__ import annotations

import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from in_toto.models._signer import load_public_key_from_file
from in_toto.models.layout import Layout, Step
from in_toto.models.metadata import Envelope
from securesystemslib.signer import CryptoSigner

from provenance.datasets import Dataset
from tests.conftest import in_toto_verify, run_pipeline


def in_toto_layout(root: Path, steps: list[tuple[str, str, list, list]]) -> Path:
    """Sign a layout built with in-toto's own API (not ours) with keys/owner."""
    layout = Layout()
    layout.set_relative_expiration(days=30)
    for _, functionary, _, _ in steps:
        key = load_public_key_from_file(str(root / f"keys/{functionary}.pub"))
        layout.add_functionary_key(key)
    for name, functionary, materials, products in steps:
        step = Step(name=name)
        step.pubkeys = [load_public_key_from_file(str(root / f"keys/{functionary}.pub"))["keyid"]]
        step.expected_materials = materials
        step.expected_products = products
        layout.steps.append(step)
    env = Envelope.from_signable(layout)
    private = load_pem_private_key((root / "keys/owner").read_bytes(), None)
    env.create_signature(CryptoSigner(private))
    env.dump(str(root / "root.layout"))
    return root / "root.layout"


# prepare records data/processed as one dataset manifest; train reads it verified.
MANIFEST = Dataset("data/processed").manifest_path
MANIFESTS = ".provenance/datasets/data_processed-*.manifest"

EXAMPLE = [
    (
        "prepare",
        "data-eng",
        [["ALLOW", "data/raw/*"], ["ALLOW", "steps/prepare.py"], ["DISALLOW", "*"]],
        [["CREATE", MANIFESTS], ["DISALLOW", "*"]],
    ),
    (
        "train",
        "trainer",
        [
            ["MATCH", MANIFESTS, "WITH", "PRODUCTS", "FROM", "prepare"],
            ["DISALLOW", MANIFESTS],
            ["ALLOW", "steps/train.py"],
            ["DISALLOW", "*"],
        ],
        [["CREATE", "models/*"], ["DISALLOW", "*"]],
    ),
    (
        "package",
        "evaluator",
        [
            ["MATCH", "models/*", "WITH", "PRODUCTS", "FROM", "train"],
            ["DISALLOW", "models/*"],
            ["DISALLOW", "*"],
        ],
        [["CREATE", "dist/model.tar"], ["DISALLOW", "*"]],
    ),
]


def package(root: Path, cli) -> int:
    """The last step recorded with `provenance run` instead of the decorator."""
    return cli(
        "run",
        "package",
        "-m",
        "models/**",
        "-p",
        "dist/**",
        "--key",
        "keys/evaluator",
        "--",
        sys.executable,
        "-c",
        "import os, tarfile; os.makedirs('dist', exist_ok=True); "
        "t = tarfile.open('dist/model.tar', 'w'); t.add('models'); t.close()",
    ).code


def test_upstream_in_toto_verify_accepts_decorator_and_run_links(project: Path, cli) -> None:
    run_pipeline(project, ("prepare", "train"))
    assert package(project, cli) == 0
    in_toto_layout(project, EXAMPLE)
    proc = in_toto_verify(project)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_upstream_in_toto_verify_rejects_data_changed_between_steps(project: Path, cli) -> None:
    run_pipeline(project, ("prepare", "train"))
    assert package(project, cli) == 0
    in_toto_layout(project, EXAMPLE)
    assert in_toto_verify(project).returncode == 0
    # An attacker swaps training data after `prepare` and writes a manifest listing it. The
    # example's train step refuses that manifest (tests/integration/test_example_dataset.py); a train step
    # that does not hold its loader to prepare's signed digest records it, and in-toto-verify
    # refuses the chain.
    x = project / "data/processed/X_train.npy"
    x.write_bytes(x.read_bytes()[:-4] + b"\x00\x00\x80\x3f")
    assert cli("dataset", "manifest", "data/processed", "-o", MANIFEST).code == 0
    r = cli(
        "run",
        "train",
        "--dataset-read",
        "data/processed",
        "-p",
        "models/**",
        "--key",
        "keys/trainer",
        "--",
        sys.executable,
        "-c",
        "open('models/model.safetensors', 'ab').write(b'retrained')",
    )
    assert r.code == 0, r.err
    proc = in_toto_verify(project)
    assert proc.returncode != 0
    assert MANIFEST in proc.stdout + proc.stderr
