"""An in-memory pipeline for unit tests of the verification phases.

Modelled on python-tuf's `RepositorySimulator`: a test starts from the honest three-step chain
(prepare -> train -> evaluate, as in `layouts/train.yaml`), changes exactly one thing — a
digest, who signed a link, the run id, the expiry, a rule, a file — and asserts which phase
fails and what it names. Keys are generated in memory, the layout is compiled from
`LayoutSpec` objects (no YAML), links are built with `link_payload`; `publish` writes the
signed layout, the links and the files to a temporary directory in one call, so each test costs
a few milliseconds and starts no process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner

from provenance.layout import LayoutSpec, ModelDecl, Rule, StepDef, Threshold, compile_layout
from provenance.layout.sign import layout_payload
from provenance.links import link_payload, write_link
from provenance.signing import dsse
from provenance.verification import VerificationResult, verify

RUN_ID = "sim-run-0001"
PEOPLE = ("owner", "data-eng", "trainer", "evaluator", "outsider")


@cache
def signer(name: str) -> CryptoSigner:
    """One in-memory ed25519 key per person, the same for the whole test session."""
    return CryptoSigner.generate_ed25519()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class SimLink:
    """One step's link before signing: what the step recorded and who signs it."""

    step: str
    signer: str
    materials: dict[str, str] = field(default_factory=dict)  # path -> sha256
    products: dict[str, str] = field(default_factory=dict)
    run_id: str | None = RUN_ID
    name_inside: str | None = None  # the step name written inside the link (default: step)
    command: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)  # more of the link's environment

    def payload(self) -> bytearray:
        env: dict[str, Any] = {"pipeline_run_id": self.run_id} if self.run_id else {}
        env.update(self.environment)
        return link_payload(
            self.name_inside or self.step,
            self.command or ["python", f"steps/{self.step}.py"],
            {p: {"sha256": d} for p, d in sorted(self.materials.items())},
            {p: {"sha256": d} for p, d in sorted(self.products.items())},
            {},
            env,
        )


class ChainSimulator:
    """The honest chain of the example pipeline, held in memory until `publish`."""

    def __init__(self) -> None:
        metrics = json.dumps({"accuracy": 0.93, "test_examples": 360}).encode()
        self.files: dict[str, bytes] = {
            "data/raw/digits.csv": b"0,1,2\n3,4,5\n",
            "steps/prepare.py": b"# prepare\n",
            "steps/train.py": b"# train\n",
            "steps/evaluate.py": b"# evaluate\n",
            "data/processed/X_train.npy": b"x-train",
            "data/processed/X_test.npy": b"x-test",
            "models/model.safetensors": b"weights",
            "models/config.json": b"{}",
            "metrics/metrics.json": metrics,
        }
        self.functionaries = {
            "data-eng": "data-eng",
            "trainer": "trainer",
            "evaluator": "evaluator",
        }
        self.layout_signer = "owner"
        self.expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)
        self.steps = [
            StepDef(
                "prepare",
                ("data-eng",),
                1,
                (Rule("allow", "data/raw/*"), Rule("allow", "steps/prepare.py")),
                (Rule("create", "data/processed/*"),),
            ),
            StepDef(
                "train",
                ("trainer",),
                1,
                (
                    Rule("match", "data/processed/*", from_step="prepare"),
                    Rule("allow", "steps/train.py"),
                ),
                (Rule("create", "models/*"),),
            ),
            StepDef(
                "evaluate",
                ("evaluator",),
                1,
                (
                    Rule("match", "models/*", from_step="train"),
                    Rule("match", "data/processed/*", from_step="prepare"),
                    Rule("allow", "steps/evaluate.py"),
                ),
                (Rule("create", "metrics/*"),),
            ),
        ]
        self.model: ModelDecl | None = ModelDecl("train", "models/*")
        self.thresholds: tuple[Threshold, ...] = (
            Threshold("evaluate", "metrics/metrics.json", "accuracy", ">=", 0.85),
        )
        digest = {p: sha256(b) for p, b in self.files.items()}

        def pick(*prefixes: str) -> dict[str, str]:
            return {p: d for p, d in digest.items() if p.startswith(prefixes)}

        self.links: dict[str, list[SimLink]] = {
            "prepare": [
                SimLink(
                    "prepare",
                    "data-eng",
                    pick("data/raw/", "steps/prepare.py"),
                    pick("data/processed/"),
                )
            ],
            "train": [
                SimLink(
                    "train",
                    "trainer",
                    pick("data/processed/", "steps/train.py"),
                    pick("models/"),
                )
            ],
            "evaluate": [
                SimLink(
                    "evaluate",
                    "evaluator",
                    pick("models/", "data/processed/", "steps/evaluate.py"),
                    pick("metrics/"),
                )
            ],
        }

    def link(self, step: str) -> SimLink:
        """The (first) link of `step`, to change before publishing."""
        return self.links[step][0]

    def spec(self) -> LayoutSpec:
        return LayoutSpec(
            path="<simulated layout>",
            expires=self.expires,
            functionaries={
                name: signer(person).public_key for name, person in self.functionaries.items()
            },
            steps=self.steps,
            model=self.model,
            thresholds=self.thresholds,
        )

    def publish(self, root: Path) -> Path:
        """Write the signed layout, the signed links and the files below `root`."""
        (root / "links").mkdir(parents=True, exist_ok=True)
        for path, data in self.files.items():
            target = root / "base" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        envelope = dsse.sign(
            layout_payload(compile_layout(self.spec())), signer(self.layout_signer)
        )
        (root / "root.layout").write_bytes(dsse.dumps(envelope))
        for links in self.links.values():
            for link in links:
                write_link(link.payload(), signer(link.signer), link.step, str(root / "links"))
        return root

    def verify(self, root: Path, **kwargs: Any) -> VerificationResult:
        """Publish to `root` and verify with the owner's public key, as `provenance verify` does."""
        self.publish(root)
        return verify(
            str(root / "root.layout"),
            [signer("owner").public_key],
            str(root / "links"),
            str(root / "base"),
            **kwargs,
        )
