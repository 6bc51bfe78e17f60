"""Each verification phase over the in-memory chain: one change, one failing phase, named.

The simulator (tests/chain_sim.py) holds the honest chain; every test changes one thing and
asserts the phase that fails, that no later phase ran, and what the failure names.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from provenance.layout import LayoutSpec, Rule, StepDef, Threshold
from provenance.links import write_link
from provenance.verification import VerificationResult, verify
from tests.chain_sim import RUN_ID, ChainSimulator, SimLink, sha256, signer

ALL_PHASES = [
    "layout-signature",
    "layout-expiry",
    "links",
    "consistency",
    "rules",
    "thresholds",
    "files",
    "datasets",
]


@pytest.fixture
def sim() -> ChainSimulator:
    return ChainSimulator()


def failed_at(result: VerificationResult, phase: str) -> list[str]:
    """Assert `phase` failed and ended the run; return its failure messages."""
    assert not result.ok
    assert result.phases_run[-1] == phase
    assert result.phases_run == ALL_PHASES[: ALL_PHASES.index(phase) + 1]
    assert {f.phase for f in result.failures} <= {phase, "run-id", "paths"}
    return [f.render() for f in result.failures]


def test_the_honest_chain_passes_every_phase(sim: ChainSimulator, tmp_path: Path) -> None:
    result = sim.verify(tmp_path)
    assert result.ok, [f.render() for f in result.failures]
    assert result.phases_run == ALL_PHASES
    assert result.run_id == RUN_ID
    assert sorted(result.links) == ["evaluate", "prepare", "train"]
    assert result.artifacts_checked == 5  # the final products: 2 processed, 2 model, 1 metrics


# --- layout-signature and layout-expiry --------------------------------------------------


def test_a_layout_signed_by_another_key_is_refused(sim: ChainSimulator, tmp_path: Path) -> None:
    sim.layout_signer = "outsider"
    result = sim.verify(tmp_path)
    (message,) = failed_at(result, "layout-signature")
    assert "root.layout" in message
    assert result.links == {}


def test_an_expired_layout_is_refused(sim: ChainSimulator, tmp_path: Path) -> None:
    sim.expires = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    (message,) = failed_at(sim.verify(tmp_path), "layout-expiry")
    assert "expired" in message


def test_a_layout_changed_after_signing_is_refused(sim: ChainSimulator, tmp_path: Path) -> None:
    sim.publish(tmp_path)
    envelope = json.loads((tmp_path / "root.layout").read_bytes())
    # The signature stays; the payload gains an ALLOW * in front of train's products.
    layout = json.loads(base64.b64decode(envelope["payload"]))
    layout["steps"][1]["expected_products"].insert(0, ["ALLOW", "*"])
    envelope["payload"] = base64.b64encode(json.dumps(layout).encode()).decode()
    (tmp_path / "root.layout").write_text(json.dumps(envelope))
    result = verify(
        str(tmp_path / "root.layout"),
        [signer("owner").public_key],
        str(tmp_path / "links"),
        str(tmp_path / "base"),
    )
    failed_at(result, "layout-signature")


# --- links: who signed, thresholds, names ------------------------------------------------


@pytest.mark.parametrize("prefix", ["./models", "models/.", "/models", "mod[e]ls"])
def test_a_signed_layout_with_a_dead_match_prefix_is_refused(
    sim: ChainSimulator, tmp_path: Path, prefix: str
) -> None:
    """Signed before the YAML refused such prefixes, or by another tool: the MATCH would see no
    artifact and a later ALLOW would take a model train never made."""
    from provenance.errors import LayoutError
    from provenance.layout import compile_layout
    from provenance.layout.sign import layout_payload
    from provenance.signing import dsse

    sim.publish(tmp_path)
    layout = compile_layout(sim.spec())
    layout.steps[2].expected_materials = [
        ["MATCH", "*", "IN", prefix, "WITH", "PRODUCTS", "IN", "models", "FROM", "train"],
        ["ALLOW", "*"],
    ]
    envelope = dsse.sign(layout_payload(layout), signer("owner"))
    (tmp_path / "root.layout").write_bytes(dsse.dumps(envelope))
    with pytest.raises(
        LayoutError, match=f"step 'evaluate', rule 'MATCH .*': prefix '{re.escape(prefix)}'"
    ):
        _verify_published(tmp_path)


def test_an_object_store_prefix_is_a_plain_directory() -> None:
    assert Rule("match", "*", from_step="x", in_prefix="s3://bucket/run-1/").in_prefix


def test_a_link_signed_by_a_key_the_step_does_not_allow_is_not_counted(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    sim.link("train").signer = "evaluator"  # a functionary, but not train's
    result = sim.verify(tmp_path)
    (message,) = failed_at(result, "links")
    failure = result.failures[0]
    assert failure.step == "train"
    assert "needs 1 link(s)" in message and "found 0 valid" in message
    assert signer("trainer").public_key.keyid[:8] in (failure.expected or "")


def test_a_link_signed_by_an_unknown_key_is_not_counted(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    sim.link("prepare").signer = "outsider"
    result = sim.verify(tmp_path)
    failed_at(result, "links")
    assert result.failures[0].step == "prepare"
    report = next(r for r in result.steps if r.name == "prepare")
    assert report.links == [] and len(report.ignored) == 1


def test_a_threshold_of_two_needs_two_functionaries_links(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    sim.functionaries["trainer-2"] = "outsider"
    old = sim.steps[1]
    sim.steps[1] = StepDef(old.name, ("trainer", "trainer-2"), 2, old.materials, old.products)
    result = sim.verify(tmp_path)
    (message,) = failed_at(result, "links")
    assert "step 'train' needs 2 link(s)" in message and "found 1 valid" in message

    # The second functionary's link, recording the same artifacts, satisfies it.
    train = sim.link("train")
    sim.links["train"].append(
        SimLink("train", "outsider", dict(train.materials), dict(train.products))
    )
    assert sim.verify(tmp_path / "again").ok


def test_functionaries_who_disagree_on_products_fail_the_step(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    sim.functionaries["trainer-2"] = "outsider"
    old = sim.steps[1]
    sim.steps[1] = StepDef(old.name, ("trainer", "trainer-2"), 2, old.materials, old.products)
    train = sim.link("train")
    other = dict(train.products, **{"models/model.safetensors": sha256(b"other weights")})
    sim.links["train"].append(SimLink("train", "outsider", dict(train.materials), other))
    (message,) = failed_at(sim.verify(tmp_path), "links")
    assert "disagree on materials or products" in message


def _two_trainers(sim: ChainSimulator, **environments: dict[str, Any]) -> None:
    """train with threshold 2: the trainer's link and an identical one by a second key."""
    sim.functionaries["trainer-2"] = "outsider"
    old = sim.steps[1]
    sim.steps[1] = StepDef(old.name, ("trainer", "trainer-2"), 2, old.materials, old.products)
    train = sim.link("train")
    train.environment = environments.get("trainer", {})
    sim.links["train"].append(
        SimLink(
            "train",
            "outsider",
            dict(train.materials),
            dict(train.products),
            environment=environments.get("other", {}),
        )
    )


@pytest.mark.parametrize(
    ("field", "mine", "theirs"),
    [
        ("git_commit", "1" * 40, "6" * 40),  # the commit SLSA provenance names
        ("parameters", '{"lr": 0.01}', '{"lr": 0.01, "note": "rogue"}'),
        ("patterns", {"products": ["models/**"]}, {"products": []}),  # the extra-file check
        ("packages_sha256", "a" * 64, None),  # a field only one link has
    ],
)
def test_functionaries_who_disagree_on_the_environment_fail_the_step(
    sim: ChainSimulator, tmp_path: Path, field: str, mine: Any, theirs: Any
) -> None:
    """With threshold 2, no single functionary decides what the verified step says downstream."""
    other = {field: theirs} if theirs is not None else {}
    _two_trainers(sim, trainer={field: mine}, other=other)
    result = sim.verify(tmp_path)
    (message,) = failed_at(result, "links")
    assert f"disagree on environment.{field}" in message
    failure = result.failures[0]
    assert failure.step == "train"
    assert ".link" in (failure.expected or "") and ".link" in (failure.actual or "")


def test_functionaries_who_ran_another_command_fail_the_step(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    _two_trainers(sim)
    sim.links["train"][1].command = ["python", "steps/train.py", "--skip-safety-eval"]
    result = sim.verify(tmp_path)
    (message,) = failed_at(result, "links")
    assert "disagree on command" in message


def test_functionaries_may_differ_in_when_and_where_they_ran(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    _two_trainers(
        sim,
        trainer={"started_on": "2026-12-01T10:00:00Z", "platform": "Linux-6.1-x86_64"},
        other={"started_on": "2026-12-01T11:00:00Z", "platform": "Linux-6.8-aarch64"},
    )
    result = sim.verify(tmp_path)
    assert result.ok, [f.render() for f in result.failures]


def test_one_key_under_two_key_ids_counts_once_towards_a_threshold(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    """A layout (from any tool) listing one key twice, spelled in two cases: two key ids. Two
    copies of the trainer's one link, one per id, must not meet a threshold of two."""
    from securesystemslib.signer import CryptoSigner, SSlibKey

    trainer = signer("trainer")
    upper = dict(trainer.public_key.to_dict())
    upper["keyval"] = {"public": upper["keyval"]["public"].upper()}
    twin = SSlibKey.from_dict(f"{'f' * 64}", dict(upper))  # any id: the layout says which
    spec = sim.spec
    sim.spec = lambda: _with_functionary(spec(), "trainer-2", twin)  # type: ignore[method-assign]
    old = sim.steps[1]
    sim.steps[1] = StepDef(old.name, ("trainer", "trainer-2"), 2, old.materials, old.products)
    sim.publish(tmp_path)
    copy = CryptoSigner(trainer._private_key, twin)
    train = sim.link("train")
    write_link(train.payload(), copy, "train", str(tmp_path / "links"))
    assert len(list((tmp_path / "links").glob("train.*.link"))) == 2
    result = verify(
        str(tmp_path / "root.layout"),
        [signer("owner").public_key],
        str(tmp_path / "links"),
        str(tmp_path / "base"),
    )
    (message,) = failed_at(result, "links")
    assert "step 'train' needs 2 link(s)" in message and "found 1 valid" in message
    assert "2 key ids in the layout name 1 key(s)" in (result.failures[0].actual or "")


def test_a_second_link_by_the_same_key_under_another_name_is_ignored_by_name(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    """in-toto reads `train.<keyid[:8]>.link` only; a stale link of the same key, renamed to
    sort first, must not become the step's link."""
    sim.publish(tmp_path)
    stale = SimLink(
        "train",
        "trainer",
        dict(sim.link("train").materials),
        dict(sim.link("train").products),
        environment={"git_commit": "6" * 40},
    )
    payload = stale.payload()
    stale_dir = tmp_path / "stale"
    path = write_link(payload, signer("trainer"), "train", str(stale_dir))
    Path(path).rename(tmp_path / "links" / "train.00000000.link")
    result = _verify_published(tmp_path)
    assert result.ok, [f.render() for f in result.failures]
    report = next(r for r in result.steps if r.name == "train")
    assert [lk["file"] for lk in report.links] == [
        f"train.{signer('trainer').public_key.keyid[:8]}.link"
    ]
    (ignored,) = report.ignored
    assert ignored["file"] == "train.00000000.link"
    assert ignored["reason"].endswith("named for another key")
    assert "git_commit" not in result.links["train"].link.environment


def _with_functionary(spec: LayoutSpec, name: str, key: Any) -> LayoutSpec:
    return dataclasses.replace(spec, functionaries={**spec.functionaries, name: key})


def test_a_link_recording_another_step_inside_is_refused(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    # evaluate's functionary signs a link named like train's file but recording 'evaluate'.
    sim.link("train").name_inside = "evaluate"
    result = sim.verify(tmp_path)
    (message,) = failed_at(result, "links")
    assert "records step 'evaluate', not 'train'" in message


def test_a_missing_link_is_named_with_the_file_it_looked_for(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    del sim.links["evaluate"]
    result = sim.verify(tmp_path)
    failed_at(result, "links")
    assert result.failures[0].step == "evaluate"
    assert "no link file evaluate.<keyid>.link" in (result.failures[0].actual or "")


# --- consistency: run ids and paths ------------------------------------------------------


def test_a_link_from_another_run_is_named_with_both_full_run_ids(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    sim.link("prepare").run_id = RUN_ID + "-but-an-older-run-with-a-long-shared-prefix"
    result = sim.verify(tmp_path)
    failed_at(result, "consistency")
    (failure,) = result.failures
    assert failure.phase == "run-id"
    text = failure.render()
    assert f"from pipeline run {RUN_ID}-but-an-older-run-with-a-long-shared-prefix" in text
    assert f"not {RUN_ID} like the other links" in text


def test_a_link_without_a_run_id_fails_unless_the_layout_opts_in(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    sim.link("prepare").run_id = None
    result = sim.verify(tmp_path)
    failed_at(result, "consistency")
    assert "step 'prepare'" in result.failures[0].message
    assert "no pipeline run id" in result.failures[0].message

    old = sim.steps[0]
    sim.steps[0] = StepDef(
        old.name, old.functionaries, 1, old.materials, old.products, run_id_optional=True
    )
    again = sim.verify(tmp_path / "opted-in")
    assert again.ok
    assert any("step 'prepare'" in w and "run_id: optional" in w for w in again.warnings)


@pytest.mark.parametrize(
    "path", ["../outside.bin", "/etc/passwd", "models/../../x", "models//x", "C:/x", "a\\b"]
)
def test_a_path_that_escapes_the_base_is_refused(
    sim: ChainSimulator, tmp_path: Path, path: str
) -> None:
    sim.link("train").products[path] = sha256(b"x")
    result = sim.verify(tmp_path)
    failed_at(result, "consistency")
    failure = next(f for f in result.failures if f.phase == "paths")
    assert failure.step == "train" and failure.artifact == path


# --- rules -------------------------------------------------------------------------------


def test_weights_swapped_between_train_and_evaluate_fail_the_match(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    sim.link("evaluate").materials["models/model.safetensors"] = sha256(b"swapped weights")
    result = sim.verify(tmp_path)
    failed_at(result, "rules")
    failure = result.failures[0]
    assert failure.step == "evaluate"
    assert failure.artifact == "models/model.safetensors"
    assert failure.rule == "DISALLOW models/*"  # the compiler's closing rule after the MATCH
    assert "'MATCH models/* WITH PRODUCTS FROM train' did not accept it" in failure.message
    assert "hash mismatch" in failure.message


def test_a_product_the_layout_does_not_create_is_disallowed(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    sim.link("train").products["backdoor.py"] = sha256(b"import os")
    result = sim.verify(tmp_path)
    failed_at(result, "rules")
    failure = result.failures[0]
    assert (failure.step, failure.artifact) == ("train", "backdoor.py")
    assert "DISALLOW *" in (failure.rule or failure.message)


def test_a_material_with_no_matching_product_upstream_is_refused(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    sim.link("train").materials["data/processed/extra.npy"] = sha256(b"not from prepare")
    result = sim.verify(tmp_path)
    failed_at(result, "rules")
    assert result.failures[0].artifact == "data/processed/extra.npy"


def test_an_allow_after_a_match_cannot_let_a_mismatch_through(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    # in-toto alone would accept this (MATCH fails silently, ALLOW * consumes the artifact);
    # the compiler closes every MATCH with a DISALLOW of its pattern.
    old = sim.steps[2]
    sim.steps[2] = StepDef(
        old.name,
        old.functionaries,
        1,
        (Rule("match", "models/*", from_step="train"), Rule("allow", "*")),
        old.products,
    )
    sim.link("evaluate").materials["models/model.safetensors"] = sha256(b"swapped weights")
    result = sim.verify(tmp_path)
    failed_at(result, "rules")
    assert result.failures[0].artifact == "models/model.safetensors"


# --- thresholds --------------------------------------------------------------------------


def test_a_metric_below_the_layouts_threshold_fails(sim: ChainSimulator, tmp_path: Path) -> None:
    sim.thresholds = (Threshold("evaluate", "metrics/metrics.json", "accuracy", ">=", 0.95),)
    result = sim.verify(tmp_path)
    failed_at(result, "thresholds")
    text = result.failures[0].render()
    assert "accuracy" in text and "0.93" in text and "0.95" in text


def test_a_metrics_file_changed_after_it_was_recorded_is_not_believed(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    sim.publish(tmp_path)
    metrics = tmp_path / "base" / "metrics" / "metrics.json"
    sim.files["metrics/metrics.json"] = json.dumps({"accuracy": 0.99}).encode()  # on disk only
    result = sim.verify(tmp_path)
    failed_at(result, "thresholds")
    assert "metrics/metrics.json" in result.failures[0].render()
    assert metrics.read_bytes() == sim.files["metrics/metrics.json"]


# --- files and model ---------------------------------------------------------------------


def test_a_final_product_changed_on_disk_fails_the_files_phase(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    sim.files["models/model.safetensors"] = b"weights, fine-tuned by someone else"
    result = sim.verify(tmp_path)
    failed_at(result, "files")
    failure = result.failures[0]
    assert failure.artifact == "models/model.safetensors"
    assert failure.expected and failure.actual and failure.expected != failure.actual


def test_a_final_product_missing_on_disk_fails_the_files_phase(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    sim.publish(tmp_path)
    (tmp_path / "base" / "models" / "config.json").unlink()
    result = verify(
        str(tmp_path / "root.layout"),
        [signer("owner").public_key],
        str(tmp_path / "links"),
        str(tmp_path / "base"),
    )
    failed_at(result, "files")
    assert any(f.artifact == "models/config.json" for f in result.failures)


@pytest.mark.parametrize("side", ["materials", "products"])
@pytest.mark.parametrize("patterns", [None, ["metrics/**"]], ids=["no patterns", "metrics/**"])
def test_a_product_a_later_step_deleted_and_put_back_fails(
    sim: ChainSimulator, tmp_path: Path, patterns: Any, side: str
) -> None:
    """evaluate's signed `delete: "*config.json"` removed models/config.json (consumed, not a
    product of evaluate; in-toto's `*` crosses '/'), whatever evaluate's recorded patterns
    cover: put back, it is extra. in-toto applies a delete on the materials side."""
    old = sim.steps[2]
    delete = Rule("delete", "*config.json")
    materials = (delete, *old.materials) if side == "materials" else old.materials
    products = (*old.products, delete) if side == "products" else old.products
    sim.steps[2] = StepDef(old.name, old.functionaries, 1, materials, products)
    if patterns:
        sim.link("evaluate").environment = {"patterns": {"products": patterns}}
    sim.publish(tmp_path)  # models/config.json is on disk, as train left it
    result = _verify_published(tmp_path)
    failed_at(result, "files")
    (failure,) = result.failures
    assert failure.artifact == "models/config.json" and "extra" in failure.render()
    (tmp_path / "base" / "models" / "config.json").unlink()  # as evaluate left it
    assert _verify_published(tmp_path).ok


def _verify_published(root: Path) -> VerificationResult:
    return verify(
        str(root / "root.layout"),
        [signer("owner").public_key],
        str(root / "links"),
        str(root / "base"),
    )


def test_a_file_planted_among_products_fails_when_links_record_no_patterns(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    """Links from upstream in-toto-run name no patterns: the owner's `create: models/*` then
    says which directory holds only what the chain recorded."""
    sim.publish(tmp_path)
    (tmp_path / "base" / "models" / "backdoor.pkl").write_bytes(b"planted after the run")
    (tmp_path / "base" / "notes").mkdir()
    (tmp_path / "base" / "notes" / "todo.txt").write_bytes(b"no rule names notes/")
    result = _verify_published(tmp_path)
    failed_at(result, "files")
    (failure,) = result.failures
    assert failure.artifact == "models/backdoor.pkl" and failure.step == "train"
    assert "extra" in failure.render()


@pytest.mark.parametrize(
    "patterns",
    [
        {"products": ["models/model.safetensors", "models/config.json"]},  # file by file
        {"products": ["models/model.safetensors", "models/config.json", "logs/*.txt"]},
        {"products": ["**/*.safetensors", "models/config.json"]},
        {"products": []},
        {"products": [123]},
        {},
        "models/**",
        None,
    ],
    ids=[
        "file by file",
        "files and a glob elsewhere",
        "a rootless glob",
        "empty",
        "not strings",
        "no products",
        "a string",
        "null",
    ],
)
def test_a_file_planted_among_products_fails_whatever_the_link_records_as_patterns(
    sim: ChainSimulator, tmp_path: Path, patterns: Any
) -> None:
    """The owner's `create: models/*` bounds the check from below: a recording that claims no
    directory (or says nothing usable) does not switch it off."""
    sim.link("train").environment = {"patterns": patterns}
    sim.publish(tmp_path)
    (tmp_path / "base" / "models" / "backdoor.pkl").write_bytes(b"planted after the run")
    result = _verify_published(tmp_path)
    failed_at(result, "files")
    (failure,) = result.failures
    assert failure.artifact == "models/backdoor.pkl" and failure.step == "train"


@pytest.mark.parametrize("patterns", [False, True], ids=["no patterns", "recorded patterns"])
def test_products_behind_a_directory_symlinked_out_of_base_are_refused(
    sim: ChainSimulator, tmp_path: Path, patterns: bool
) -> None:
    """`base/models` -> a copy outside base: the files match, but they are not the base's."""
    if patterns:
        sim.link("train").environment = {"patterns": {"products": ["models/**"]}}
        sim.link("evaluate").environment = {"patterns": {"products": ["metrics/**"]}}
        sim.link("prepare").environment = {"patterns": {"products": ["data/processed/**"]}}
    sim.publish(tmp_path)
    base = tmp_path / "base"
    (base / "data").rename(tmp_path / "elsewhere")
    (base / "data").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    result = _verify_published(tmp_path)
    failed_at(result, "files")
    refused = {f.artifact: f.actual for f in result.failures}
    target = "data/processed" if patterns else "data/processed/X_train.npy"
    assert refused.get(target) and "reaches outside the base directory" in refused[target]
    assert result.artifacts_checked < 5


def test_a_links_directory_inside_a_product_directory_hides_nothing_but_links(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    """The tree names the links directory (pyproject's links_dir): moved under models/, its link
    files and RUN_ID are the chain's own, anything else there is extra."""
    sim.link("train").environment = {"patterns": {"products": ["models/**"]}}
    sim.publish(tmp_path)
    links = tmp_path / "base" / "models" / ".l"
    (tmp_path / "links").rename(links)
    (links / "RUN_ID").write_text("sim-run-0001\n")
    args = ("root.layout", "owner")
    honest = verify(
        str(tmp_path / args[0]), [signer(args[1]).public_key], str(links), str(tmp_path / "base")
    )
    assert honest.ok, [f.render() for f in honest.failures]
    for planted in ("backdoor.pkl", "evil.0badc0de.link"):
        (links / planted).write_bytes(b"planted")
    foreign = write_link(sim.link("train").payload(), signer("outsider"), "train", str(tmp_path))
    Path(foreign).rename(links / "train.deadbeef.link")  # a signed link, but not the chain's
    (links / "RUN_ID").write_bytes(b"sim-run-0001" + b" " * 4096 + b"\x80pickle")  # padded
    result = verify(
        str(tmp_path / args[0]), [signer(args[1]).public_key], str(links), str(tmp_path / "base")
    )
    failed_at(result, "files")
    assert {f.artifact for f in result.failures} == {
        "models/.l/backdoor.pkl",
        "models/.l/train.deadbeef.link",  # named like a link, but not one the chain accepted
        "models/.l/evil.0badc0de.link",
        "models/.l/RUN_ID",  # not the run's id
    }
    assert {f.step for f in result.failures} == {"train"}


def test_a_run_id_that_is_a_fifo_is_not_read(tmp_path: Path) -> None:
    """Opening a FIFO blocks until a writer comes: the RUN_ID check must not wait for one."""
    import os
    import threading

    from provenance.verification._files import _names_run

    os.mkfifo(tmp_path / "RUN_ID")
    answer: list[bool] = []
    reader = threading.Thread(target=lambda: answer.append(_names_run(str(tmp_path), "r1")))
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive() and answer == [False]
    os.unlink(tmp_path / "RUN_ID")
    os.mkdir(tmp_path / "RUN_ID")  # a directory: no crash, not the run's id
    assert _names_run(str(tmp_path), "r1") is False


def test_a_directory_symlink_inside_base_is_followed_as_the_recorder_follows_it(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    sim.link("prepare").environment = {"patterns": {"products": ["data/processed/**"]}}
    sim.publish(tmp_path)
    base = tmp_path / "base"
    (base / "data").rename(base / "real-data")
    (base / "data").symlink_to("real-data", target_is_directory=True)
    result = _verify_published(tmp_path)
    assert result.ok, [f.render() for f in result.failures]


def test_registered_files_are_held_to_exactly_the_declared_model(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    want = {
        "model.safetensors": sha256(sim.files["models/model.safetensors"]),
        "config.json": sha256(sim.files["models/config.json"]),
    }
    phases = [*ALL_PHASES[:6], "model"]
    honest = sim.verify(tmp_path / "a", model_files=want)
    assert honest.ok and honest.phases_run == phases

    swapped = sim.verify(tmp_path / "b", model_files={**want, "model.safetensors": sha256(b"x")})
    assert not swapped.ok and swapped.phases_run == phases
    assert swapped.failures[0].artifact is not None
    assert "model.safetensors" in swapped.failures[0].artifact

    extra = sim.verify(tmp_path / "c", model_files={**want, "extra.py": sha256(b"x")})
    assert not extra.ok and any("extra.py" in (f.artifact or "") for f in extra.failures)


def test_a_layout_without_a_model_cannot_check_registered_files(
    sim: ChainSimulator, tmp_path: Path
) -> None:
    sim.model = None
    result = sim.verify(tmp_path, model_files={"model.safetensors": sha256(b"weights")})
    assert not result.ok and result.phases_run[-1] == "model"
    assert "declares no model" in result.failures[0].message


def test_the_pass_line_names_the_whole_run_id(sim: ChainSimulator, tmp_path: Path) -> None:
    long_id = "airflow:digits/scheduled__2026-12-07T03:00:00+00:00"
    for links in sim.links.values():
        for link in links:
            link.run_id = long_id
    result = sim.verify(tmp_path)
    assert result.ok
    assert f", pipeline run {long_id};" in result.verdict
