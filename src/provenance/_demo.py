"""The end-to-end demo behind `make demo` / `provenance demo`.

A fresh workspace, the example pipeline run as recorded steps, the layout signed and the run
verified, then the later stages (SLSA provenance, MLflow promotion) when their extras are
installed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provenance import _config
from provenance.errors import UsageError, VerificationError

if TYPE_CHECKING:
    from provenance.verification import VerificationResult

MARKER = ".provenance-demo"
KEYS = ("data-eng", "trainer", "evaluator", "owner", "gate")
STEPS = ("prepare", "train", "evaluate")


@dataclass
class DemoReport:
    workdir: Path
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # stage, outcome, detail
    jobs: list[dict[str, Any]] = field(default_factory=list)  # --stack: each step's job

    def add(self, stage: str, outcome: str, detail: str) -> None:
        self.rows.append((stage, outcome, detail))


def prepare_workspace(workdir: Path, project: Path, fresh: bool) -> None:
    for needed in ("steps", "layouts"):
        if not (project / needed).is_dir():
            raise UsageError(
                f"{project / needed} not found: run the demo from the repository root "
                "or pass --project"
            )
    if workdir.exists():
        if not fresh:
            raise UsageError(f"{workdir} exists; pass --fresh to replace it")
        if not (workdir / MARKER).exists():
            raise UsageError(f"refusing to delete {workdir}: it is not a demo workspace")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / MARKER).write_text("created by provenance demo\n")
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(project / "steps", workdir / "steps", ignore=ignore)
    shutil.copytree(project / "layouts", workdir / "layouts")
    raw = workdir / "data" / "raw"
    raw.mkdir(parents=True)
    digits = resources.files("sklearn.datasets.data") / "digits.csv.gz"
    (raw / "digits.csv.gz").write_bytes(digits.read_bytes())


def run_steps(workdir: Path, say: Callable[[str], None]) -> None:
    env = _config.environment_copy(lambda k: not k.startswith("PROVENANCE_"))
    env["PYTHONPATH"] = str(workdir)
    for step in STEPS:
        proc = subprocess.run(
            [sys.executable, f"steps/{step}.py"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise VerificationError(f"step '{step}' failed: {proc.stderr.strip()[-500:]}")


def describe_links(result: VerificationResult) -> list[tuple[str, int, int, str, str]]:
    """(step, materials, products, first product digest, signer keyid) per verified link."""
    rows = []
    for step, verified in result.links.items():
        link = verified.link
        products = sorted(link.products.items())
        first = f"{products[0][0]} {products[0][1]['sha256'][:12]}…" if products else "-"
        rows.append((step, len(link.materials), len(link.products), first, verified.keyid[:8]))
    return rows


def _section(doc: Any, key: str) -> dict[str, Any]:
    value = doc.get(key) if isinstance(doc, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else {}


def describe_datasets(result: VerificationResult) -> list[tuple[str, str]]:
    """(dataset source, detail) per dataset a verified step recorded as a product.

    The detail: members, bytes, the manifest's sha256 as the producing step recorded it, and
    what each step's verifying loader read of it (`environment.datasets.read` of its link).
    """
    rows = []
    for step, verified in result.links.items():
        link = verified.link
        products = _section(_section(link.environment, "datasets"), "products")
        for manifest in sorted(products):
            described = _section(products, manifest)
            sha = str(_section(link.products, manifest).get("sha256", ""))
            size = described.get("bytes")
            detail = [
                f"{described.get('members')} members"
                + (f", {size:,} bytes" if isinstance(size, int) else ""),
                f"manifest sha256 {sha[:12]}… ({step})",
            ]
            for reader, other in result.links.items():
                read = _section(_section(_section(other.link.environment, "datasets"), "read"), sha)
                if read:
                    how = "verified" if read.get("completed") is True else "verified, stopped early"
                    detail.append(
                        f"{reader} read {read.get('shards_read')} of {read.get('members')} "
                        f"shards {how}"
                    )
            rows.append((str(described.get("source")), "; ".join(detail)))
    return rows


def run_demo(workdir: Path, project: Path, fresh: bool, say: Callable[[str], None]) -> DemoReport:
    from provenance.signing import generate

    workdir, project = workdir.resolve(), project.resolve()
    report = DemoReport(workdir)
    prepare_workspace(workdir, project, fresh)
    for name in KEYS:
        generate(name, str(workdir / "keys"))
    report.add("keys", "ok", f"{len(KEYS)} ed25519 key pairs in keys/ (private keys 0600)")
    say(f"workspace {workdir}")
    run_steps(workdir, say)
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        result = sign_and_verify(report, say, "layouts/train.yaml", ".provenance/links")
        for stage in _later_stages():
            stage(workdir, report, say, result)
    finally:
        os.chdir(cwd)
    return report


def sign_and_verify(
    report: DemoReport,
    say: Callable[[str], None],
    layout: str,
    links_dir: str,
    where: str = "files on disk",
) -> VerificationResult:
    """Sign `layout` with keys/owner into root.layout and verify the links in `links_dir`.

    Runs in the workspace; a failure raises VerificationError after its row is added.
    """
    from provenance.layout import sign_layout
    from provenance.signing import load_public_key, load_signer
    from provenance.verification import verify

    signed = sign_layout(layout, load_signer("keys/owner"), "root.layout")
    report.add("layout", "signed", f"{layout} -> root.layout (owner {signed.keyid[:8]})")
    result = verify("root.layout", [load_public_key("keys/owner.pub")], links_dir, ".")
    for step, n_mat, n_prod, first, signer in describe_links(result):
        say(f"  {step:<9} {n_mat:>2} materials {n_prod:>2} products  {first:<48} key {signer}")
        report.add(
            f"step {step}", "recorded", f"{n_mat} materials, {n_prod} products, key {signer}"
        )
    datasets = describe_datasets(result)
    for source, detail in datasets:
        say(f"  dataset {source}: {detail}")
        report.add(f"dataset {source}", "manifest", detail)
    say(result.verdict)
    summary = (
        f"{len(result.steps)} steps, one pipeline run, {result.artifacts_checked} {where} "
        "equal their recorded digests"
    )
    if datasets and "datasets" in result.phases_run:
        summary += f"; the members of {len(datasets)} dataset(s) equal their manifests"
    report.add("verify", "PASS" if result.ok else "FAIL", summary if result.ok else result.verdict)
    if not result.ok:
        raise VerificationError(result.verdict)
    return result


Stage = Callable[[Path, Any, Callable[[str], None], "VerificationResult"], None]


def _later_stages() -> list[Stage]:
    """Stages contributed by the SLSA and MLflow packages, in order.

    A stage whose extra is not installed is replaced by one line naming the extra to install.
    """
    from provenance.gate.mlflow.demo import mlflow_stage

    stages = attestation_stages()
    if importlib.util.find_spec("mlflow") is None:
        stages.append(_skipped("mlflow promote", "mlflow"))
    else:
        stages.append(mlflow_stage)
    return stages


def attestation_stages() -> list[Stage]:
    """SLSA provenance of the weights, then the ML-BOM (skipped without the `bom` extra)."""
    from provenance.attest.slsa.demo import slsa_stage

    stages: list[Stage] = [slsa_stage]
    if importlib.util.find_spec("cyclonedx") is None:
        stages.append(_skipped("ML-BOM", "bom"))
    else:
        stages.append(_bom_stage)
    return stages


def _bom_stage(
    workdir: Path, report: Any, say: Callable[[str], None], result: VerificationResult
) -> None:
    """The CycloneDX ML-BOM of what verified (bom.cdx.json in the workspace)."""
    import json

    from provenance._fs import write_atomic
    from provenance.attest.bom import build_bom

    doc = build_bom(result)
    write_atomic("bom.cdx.json", json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n")
    components = doc.get("components", [])
    kinds: dict[str, int] = {}
    for c in components:
        kinds[c.get("type", "?")] = kinds.get(c.get("type", "?"), 0) + 1
    libraries = sum(len(f.get("components", [])) for f in doc.get("formulation", []))
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    say(f"ML-BOM: CycloneDX {doc.get('specVersion')} -> bom.cdx.json ({summary})")
    report.add(
        "ML-BOM",
        "written",
        f"CycloneDX {doc.get('specVersion')}, {summary}, {libraries} packages -> bom.cdx.json",
    )


def _skipped(stage: str, extra: str) -> Stage:
    def skip(workdir: Path, report: Any, say: Callable[[str], None], _: Any) -> None:
        hint = f"pip install 'ml-provenance[{extra}]'"
        say(f"{stage}: skipped, {extra} is not installed ({hint})")
        report.add(stage, "skipped", hint)

    return skip
