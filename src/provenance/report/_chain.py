"""What a report shows, as plain data built from one `VerificationResult` (never from disk).

Steps in layout order with their signers, the artifacts flowing between them (a material is
matched to an earlier step's product by path and sha256), the verdict of every phase and rule,
and the status of the attestations given. Renderers (HTML, Markdown) only format this.
A dataset recorded as one manifest artifact is shown as one dataset (source, members, size,
manifest digest, as the verified link records them), not as a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from provenance.datasets import RecordedDataset, recorded_datasets
from provenance.verification import VerificationResult

PHASES = (
    "layout-signature",
    "layout-expiry",
    "links",
    "consistency",
    "rules",
    "inspections",
)
PASS, FAIL, NOT_RUN = "PASS", "FAIL", "NOT RUN"
INPUTS = "raw inputs"
OUTPUTS = "final products"


@dataclass(frozen=True)
class Signer:
    name: str  # functionary name, "" when the layout does not name it
    keyid: str


@dataclass
class StepView:
    """One step: who may sign it, who did, and what its verified link records."""

    name: str
    allowed: list[Signer] = field(default_factory=list)
    signed_by: list[Signer] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    link_file: str = ""
    materials: dict[str, str] = field(default_factory=dict)  # path -> sha256
    products: dict[str, str] = field(default_factory=dict)
    ignored: list[dict[str, str]] = field(default_factory=list)
    datasets: list[RecordedDataset] = field(default_factory=list)


@dataclass(frozen=True)
class Flow:
    """Artifacts going from `source` (a step, or INPUTS) to `target` (a step, or OUTPUTS)."""

    source: str
    target: str
    artifacts: tuple[tuple[str, str], ...]  # (path, sha256)


@dataclass(frozen=True)
class Row:
    """A verdict line: a phase, a rule or an attestation."""

    name: str
    status: str
    detail: str = ""
    step: str = ""


@dataclass
class ChainView:
    layout: str
    layout_sha256: str | None
    verdict: str
    ok: bool
    run_id: str | None
    steps: list[StepView]
    flows: list[Flow]
    phases: list[Row]
    rules: list[Row]
    failures: list[str]
    attestations: list[Row]
    ignored: list[dict[str, str]]
    model: str | None

    @property
    def verified(self) -> bool:
        """Whether the artifacts shown come from verified links (only when verification passed)."""
        return self.ok

    @property
    def datasets(self) -> dict[tuple[str, str], RecordedDataset]:
        """(manifest path, sha256) -> the dataset, as the step that recorded it describes it."""
        found: dict[tuple[str, str], RecordedDataset] = {}
        for step in self.steps:  # a product's description wins over a later reader's
            for ds in sorted(step.datasets, key=lambda d: d.side != "products"):
                found.setdefault((ds.manifest, ds.sha256), ds)
        return found

    def flow_label(self, flow: Flow) -> str:
        """`1 dataset, 2 files`: what an edge carries, a dataset counted once."""
        datasets = self.datasets
        n_sets = sum(1 for a in flow.artifacts if a in datasets)
        n_files = len(flow.artifacts) - n_sets
        parts = [f"{n_sets} dataset{'s' if n_sets != 1 else ''}"] if n_sets else []
        if n_files or not parts:
            parts.append(f"{n_files} file{'s' if n_files != 1 else ''}")
        return ", ".join(parts)


def _signer(keyid: str, names: dict[str, str]) -> Signer:
    return Signer(names.get(keyid, ""), keyid)


def _phases(result: VerificationResult, layout: Any) -> list[Row]:
    last = ("model",) if "model" in result.phases_run else ("files", "datasets")
    rows: list[Row] = []
    for name in (*PHASES, *last):
        if name == "inspections" and layout is not None and not layout.inspect:
            rows.append(Row(name, PASS, "the layout has no inspections"))
            continue
        if name not in result.phases_run:
            rows.append(Row(name, NOT_RUN, "an earlier phase failed" if result.failures else ""))
            continue
        failed = [f for f in result.failures if _phase_of(f.phase) == name]
        rows.append(Row(name, FAIL if failed else PASS, failed[0].summary() if failed else ""))
    return rows


def _phase_of(failure_phase: str) -> str:
    return "consistency" if failure_phase in ("paths", "run-id") else failure_phase


def _rules(result: VerificationResult, layout: Any) -> list[Row]:
    if layout is None:
        return []
    ran = "rules" in result.phases_run
    failed = {(f.step, f.rule) for f in result.failures if f.phase == "rules"}
    failed_steps = {step for step, _ in failed}
    rows: list[Row] = []
    for step in layout.steps:
        for kind, rules in (
            ("materials", step.expected_materials),
            ("products", step.expected_products),
        ):
            for rule in rules:
                text = " ".join(str(part) for part in rule)
                if not ran:
                    status = NOT_RUN
                elif (step.name, text) in failed:
                    status = FAIL
                elif step.name in failed_steps:
                    status = "NOT REACHED"
                else:
                    status = PASS
                rows.append(Row(text, status, kind, step.name))
    return rows


def _flows(steps: list[StepView], model: Any = None) -> list[Flow]:
    """Match each material to the latest earlier step that produced the same path and digest.

    Final products: what no later step consumed, and always the model the layout declares.
    """
    from fnmatch import fnmatchcase

    grouped: dict[tuple[str, str], list[tuple[str, str]]] = {}
    consumed: set[tuple[str, str]] = set()
    for i, step in enumerate(steps):
        for path, sha in sorted(step.materials.items()):
            source = INPUTS
            for earlier in reversed(steps[:i]):
                if earlier.products.get(path) == sha:
                    source = earlier.name
                    consumed.add((earlier.name, path))
                    break
            grouped.setdefault((source, step.name), []).append((path, sha))
    for step in steps:
        final = [
            (p, s)
            for p, s in sorted(step.products.items())
            if (step.name, p) not in consumed
            or (model is not None and model.step == step.name and fnmatchcase(p, model.products))
        ]
        if final:
            grouped[(step.name, OUTPUTS)] = final
    return [Flow(src, dst, tuple(arts)) for (src, dst), arts in grouped.items()]


def build_view(result: VerificationResult, attestations: list[Row] | None = None) -> ChainView:
    """The report's content: only what `result` verified (links only when verification passed)."""
    layout = result.layout_obj
    names = result.policy.names if result.policy is not None else {}
    reports = {s.name: s for s in result.steps}
    order = [s.name for s in layout.steps] if layout is not None else list(reports)
    steps: list[StepView] = []
    for name in order:
        view = StepView(name)
        if layout is not None:
            step = next(s for s in layout.steps if s.name == name)
            view.allowed = [_signer(k, names) for k in step.pubkeys]
        report = reports.get(name)
        if report is not None:
            view.signed_by = [_signer(lk["keyid"], names) for lk in report.links]
            view.ignored = list(report.ignored)
        link = result.links.get(name) if result.ok else None
        if link is not None:
            view.link_file = link.file
            view.command = list(link.link.command)
            view.materials = {p: d["sha256"] for p, d in link.link.materials.items()}
            view.products = {p: d["sha256"] for p, d in link.link.products.items()}
            view.datasets = recorded_datasets(
                link.link.environment, link.link.materials, link.link.products
            )
        steps.append(view)
    return ChainView(
        layout=result.layout,
        layout_sha256=result.layout_sha256,
        verdict=result.verdict,
        ok=result.ok,
        run_id=result.run_id,
        steps=steps,
        flows=_flows(steps, result.model),
        phases=_phases(result, layout),
        rules=_rules(result, layout),
        failures=[f"[{f.phase}] {f.summary()}" for f in result.failures],
        attestations=list(attestations or []),
        ignored=list(result.ignored),
        model=f"{result.model.step}: {result.model.products}" if result.model else None,
    )
