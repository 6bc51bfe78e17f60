"""trace compares the file on disk with the digest the verified chain ends with."""

from __future__ import annotations

from pathlib import Path

from provenance.layout import Rule, StepDef
from provenance.report import on_disk, trace, verified_chain
from tests.chain_sim import ChainSimulator, sha256, signer

MODEL = "models/model.safetensors"


def _modified_by_evaluate(tmp_path: Path) -> tuple[ChainSimulator, bytes]:
    """train makes the weights; evaluate (allowed to modify models/*) leaves new ones."""
    sim = ChainSimulator()
    old = sim.steps[2]
    products = (*old.products, Rule("modify", "models/*"))
    sim.steps[2] = StepDef(old.name, old.functionaries, 1, old.materials, products)
    first = sim.files[MODEL]
    sim.files[MODEL] = b"weights, changed by evaluate"
    sim.link("evaluate").products[MODEL] = sha256(sim.files[MODEL])
    assert sim.verify(tmp_path).ok
    return sim, first


def _lineage(tmp_path: Path, target: str = MODEL):
    records, final = verified_chain(
        str(tmp_path / "root.layout"),
        [signer("owner").public_key],
        str(tmp_path / "links"),
        str(tmp_path / "base"),
    )
    lineage = trace(target, records, verified=True, source="verified")
    on_disk(lineage, str(tmp_path / "base"), final)
    return lineage


def test_the_final_weights_match(tmp_path: Path) -> None:
    _modified_by_evaluate(tmp_path)
    lineage = _lineage(tmp_path)
    assert [r.step for r in lineage.roots] == ["train", "evaluate"]
    assert (lineage.on_disk, lineage.on_disk_step) == ("matches", "evaluate")


def test_weights_rolled_back_to_an_earlier_steps_differ(tmp_path: Path) -> None:
    """train's digest is in the chain, but not the one it ends with."""
    _, first = _modified_by_evaluate(tmp_path)
    (tmp_path / "base" / MODEL).write_bytes(first)
    lineage = _lineage(tmp_path)
    assert (lineage.on_disk, lineage.on_disk_step) == ("DIFFERS", "evaluate")


def test_a_file_a_later_step_deleted_is_not_said_to_match(tmp_path: Path) -> None:
    """evaluate's signed `delete: models/config.json`: train's config, still on disk, is not
    what the chain ends with, whatever its digest."""
    sim = ChainSimulator()
    old = sim.steps[2]
    products = (*old.products, Rule("delete", "models/config.json"))
    sim.steps[2] = StepDef(old.name, old.functionaries, 1, old.materials, products)
    sim.publish(tmp_path)
    lineage = _lineage(tmp_path, "models/config.json")
    assert [r.step for r in lineage.roots] == ["train"]
    assert lineage.on_disk == "deleted"
