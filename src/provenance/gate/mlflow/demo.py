"""Demo stage: MLflow registry in a SQLite file; promote, refuse a tampered version, load safely."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL = "digits-classifier"


@dataclass(frozen=True)
class Registry:
    """Where the stage registers and promotes.

    The embedded SQLite file, or a shared server (`provenance demo --stack`: its links gathered
    from the server, the stack's gate key).
    """

    tracking_uri: str
    links_dir: str = ".provenance/links"
    evidence: tuple[str, ...] = ("metrics/metrics.json",)
    gate_key: str = "keys/gate"
    gate_pub: str = "keys/gate.pub"


def mlflow_stage(workdir: Path, report: Any, say: Callable[[str], None], _: Any) -> None:
    """The demo's MLflow stage on a file-backed registry in the workspace."""
    promote_and_fetch(Registry(f"sqlite:///{workdir / 'mlflow.db'}"), workdir, report, say)


def promote_and_fetch(
    registry: Registry, workdir: Path, report: Any, say: Callable[[str], None]
) -> None:
    """Register `models/`, promote it, refuse a tampered copy, then load @champion verified."""
    from provenance.errors import VerificationError
    from provenance.gate import load_verified, promote
    from provenance.gate.mlflow import MlflowRegistry, register_files
    from provenance.signing import load_public_key, load_signer

    uri = registry.tracking_uri
    owner, gate = [load_public_key("keys/owner.pub")], load_signer(registry.gate_key)
    gate_pub = load_public_key(registry.gate_pub)

    honest = register_files(
        MODEL,
        "models",
        links_dir=registry.links_dir,
        evidence=registry.evidence,
        tracking_uri=uri,
    )
    result = promote(
        MODEL,
        honest.version,
        "champion",
        layout="root.layout",
        layout_keys=owner,
        gate_signer=gate,
        tracking_uri=uri,
    )
    say(result.verdict)
    report.add(
        "mlflow promote",
        "PROMOTED" if result.promoted else "REFUSED",
        f"version {honest.version} -> @champion: {len(result.files)} files, artifacts "
        f"sha256 {str(result.artifacts_sha256)[:16]}…, signed decision on the version",
    )
    if not result.promoted:
        raise VerificationError(result.verdict)
    checked = result.verification.thresholds if result.verification else []
    if checked:
        report.add(
            "thresholds",
            "MET",
            ", ".join(f"{t['metric']} {t['actual']} {t['op']} {t['value']}" for t in checked)
            + " (metrics/metrics.json as evaluate recorded it)",
        )
    scan = result.scan or {}
    report.add("model scan", "PASSED" if scan.get("ok") else "FAILED", str(scan.get("verdict")))
    vsa = result.vsa or {}
    levels = (result.decision.to_dict() if result.decision else {}).get("result")
    report.add(
        "SLSA VSA",
        str(levels),
        f"verification_summary/v1 signed by the gate for models:/{MODEL}/{honest.version}, "
        f"kept as provenance.vsa.champion ({len(str(vsa))} bytes)",
    )

    tampered_dir = workdir / "tampered-models"
    shutil.copytree("models", tampered_dir)
    weights = tampered_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    forged = register_files(
        MODEL,
        str(tampered_dir),
        links_dir=registry.links_dir,
        evidence=registry.evidence,
        tracking_uri=uri,
    )
    attack = promote(
        MODEL,
        forged.version,
        "champion",
        layout="root.layout",
        layout_keys=owner,
        gate_signer=gate,
        tracking_uri=uri,
    )
    holder = MlflowRegistry(uri).get_by_alias(MODEL, "champion")
    champion = holder.version if holder else "none"
    say(attack.verdict)
    first = attack.verification.failures[0] if attack.verification else None
    why = (
        f"hash mismatch for {first.artifact}: expected {str(first.expected)[:12]}…, "
        f"actual {str(first.actual)[:12]}…"
        if first and first.expected
        else (attack.failures[0].summary() if attack.failures else "")
    )
    report.add(
        "tampered version",
        "REFUSED" if not attack.promoted else "PROMOTED (BUG)",
        f"version {forged.version}: {why}; @champion stays on version {champion}",
    )
    if attack.promoted or champion != honest.version:
        raise VerificationError("the tampered version was promoted")

    loaded = load_verified(f"models:/{MODEL}@champion", "serving", gate_pub, tracking_uri=uri)
    report.add(
        "verified load",
        "VERIFIED",
        f"models:/{MODEL}@champion = version "
        f"{loaded.version}, {len(loaded.files)} files re-hashed into serving/",
    )
