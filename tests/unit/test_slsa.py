"""SLSA provenance: the real GitHub Actions vectors, our own key-signed statements, and the
slsa-verifier hand-off."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
from pathlib import Path

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement

LAYOUT = ("--layout", "root.layout", "--layout-key", "keys/owner.pub")
VECTORS = Path(__file__).parents[1] / "vectors"  # vendored: see vectors/SOURCES.md
GENERIC = VECTORS / "slsa-verifier" / "gha_generic" / "v2.1.0"
ARTIFACT = GENERIC / "binary-linux-amd64-workflow_dispatch"
PROVENANCE = GENERIC / "binary-linux-amd64-workflow_dispatch.intoto.jsonl"
ROOT = VECTORS / "sigstore-python" / "trusted_root.production.json"
SOURCE = "github.com/slsa-framework/example-package"
GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_generic_slsa3.yml"
)


def slsa_verify(cli, artifact=ARTIFACT, provenance=PROVENANCE, *extra: str):
    return cli(
        "slsa",
        "verify",
        artifact,
        "--provenance",
        provenance,
        "--builtin",
        "--trusted-root",
        ROOT,
        *extra,
    )


def test_l3_generic_generator_vector_verifies_offline(cli, monkeypatch) -> None:
    def no_network(*_a, **_k):
        raise AssertionError("verification tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    r = slsa_verify(cli, ARTIFACT, PROVENANCE, "--source-uri", SOURCE, "--source-branch", "main")
    assert r.code == 0, r.out + r.err
    assert r.out.startswith("PASS") and "built-in (sigstore-python" in r.out
    assert GENERATOR + "@refs/tags/v2.1.0" in r.out
    doc = json.loads(slsa_verify(cli, ARTIFACT, PROVENANCE, "--source-uri", SOURCE, "--json").out)
    assert doc["verified"] and doc["sha256"].startswith("376e7e01")
    verified = doc["facts"]["verified"]
    assert verified["source_ref"] == "refs/heads/main"
    assert verified["signer"] == GENERATOR + "@refs/tags/v2.1.0"
    assert verified["source_repository"] == "https://github.com/" + SOURCE.removeprefix(
        "github.com/"
    )
    # The statement's builder is the signer itself: nothing about it is left as a mere claim.
    assert doc["facts"]["claimed"]["builder_id"] == verified["signer"]


def test_vector_verifies_with_the_root_sigstore_python_ships(cli) -> None:
    r = cli(
        "slsa",
        "verify",
        ARTIFACT,
        "--provenance",
        PROVENANCE,
        "--builtin",
        "--source-uri",
        SOURCE,
        "--source-branch",
        "main",
    )
    assert r.code == 0, r.out + r.err


def test_builder_id_given_with_and_without_tag(cli) -> None:
    for builder in (GENERATOR, GENERATOR + "@refs/tags/v2.1.0"):
        assert (
            slsa_verify(
                cli, ARTIFACT, PROVENANCE, "--source-uri", SOURCE, "--builder-id", builder
            ).code
            == 0
        )


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--source-uri", "github.com/attacker/example-package"), "source repository"),
        (("--source-uri", SOURCE, "--source-branch", "release"), "source branch"),
        (("--source-uri", SOURCE, "--source-tag", "v1.0.0"), "source tag"),
        (
            (
                "--source-uri",
                SOURCE,
                "--builder-id",
                "https://github.com/attacker/builder/.github/workflows/b.yml@refs/tags/v1.0.0",
            ),
            "builder id",
        ),
    ],
)
def test_vector_fails_for_wrong_source_ref_or_builder(cli, extra, words) -> None:
    r = slsa_verify(cli, ARTIFACT, PROVENANCE, *extra)
    assert r.code == 1 and r.out.startswith("FAIL") and words in r.out


def test_one_flipped_artifact_byte_fails(cli, tmp_path: Path) -> None:
    data = bytearray(ARTIFACT.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered = tmp_path / ARTIFACT.name
    tampered.write_bytes(bytes(data))
    r = slsa_verify(cli, tampered, PROVENANCE, "--source-uri", SOURCE)
    assert r.code == 1 and "no subject has the artifact's sha256" in r.out


def _edit_bundle(tmp_path: Path, edit) -> Path:
    bundle = json.loads(PROVENANCE.read_text())
    edit(bundle)
    out = tmp_path / "edited.intoto.jsonl"
    out.write_text(json.dumps(bundle))
    return out


def test_edited_predicate_fails(cli, tmp_path: Path) -> None:
    def edit(bundle: dict) -> None:
        env = bundle["dsseEnvelope"]
        statement = json.loads(base64.b64decode(env["payload"]))
        statement["predicate"]["invocation"]["configSource"]["entryPoint"] = "evil.yml"
        env["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    r = slsa_verify(cli, ARTIFACT, _edit_bundle(tmp_path, edit), "--source-uri", SOURCE)
    assert r.code == 1 and r.out.startswith("FAIL")


def test_flipped_signature_byte_fails(cli, tmp_path: Path) -> None:
    def edit(bundle: dict) -> None:
        sig = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
        sig[10] ^= 0x01
        bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()

    r = slsa_verify(cli, ARTIFACT, _edit_bundle(tmp_path, edit), "--source-uri", SOURCE)
    assert r.code == 1 and r.out.startswith("FAIL")


def test_v200_bare_dsse_needs_online_lookup_and_never_passes(cli) -> None:
    old = (
        VECTORS
        / "slsa-verifier"
        / "gha_generic"
        / "v2.0.0"
        / "binary-linux-amd64-workflow_dispatch.intoto.jsonl"
    )
    r = slsa_verify(cli, ARTIFACT, old, "--source-uri", SOURCE)
    assert r.code == 3 and "looked up online" in r.err and "Traceback" not in r.err


def test_npm_intoto_v002_entry_verifies_offline_by_sha512(cli) -> None:
    """npm provenance: the time comes from the entry's signed timestamp; subjects are sha512."""
    npm = VECTORS / "gh"
    args = (npm / "sigstore-js-2.1.0.tgz", npm / "sigstore-js-2.1.0-bundle.json")
    source = ("--source-uri", "github.com/sigstore/sigstore-js")
    r = slsa_verify(cli, *args, *source, "--digest-alg", "sha512", "--json")
    assert r.code == 0, r.out + r.err
    doc = json.loads(r.out)
    assert doc["digest"].startswith("sha512:") and doc["facts"]["verified"]["time_source"] == (
        "rekor-set"
    )
    assert doc["facts"]["verified"]["signer"] == (
        "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main"
    )
    assert (
        doc["facts"]["claimed"]["builder_id"] == "https://github.com/actions/runner/github-hosted"
    )
    by_sha256 = slsa_verify(cli, *args, *source)
    assert by_sha256.code == 1 and "no subject has the artifact's sha256" in by_sha256.out


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"mediaType": "x"}',
        b'{"bundle": {"mediaType": "application/vnd.dev.sigstore.bundle.v9+json"}}',
    ],
)
def test_malformed_provenance_is_invalid_input(cli, tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.intoto.jsonl"
    bad.write_bytes(content)
    r = slsa_verify(cli, ARTIFACT, bad, "--source-uri", SOURCE)
    assert r.code == 3 and str(bad) in r.err and "Traceback" not in r.err


def test_slsa_verifier_binary_is_used_when_installed(cli, tmp_path: Path) -> None:
    """slsa-verifier cannot be installed here (a Go binary outside the registries): a stand-in
    executable checks that we call it with the same checks and report its verdict."""
    record = tmp_path / "argv.json"
    stub = tmp_path / "slsa-verifier"
    stub.write_text(
        f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {record}\n"
        "case \"$*\" in *release*) echo 'FAILED: source branch mismatch' >&2; "
        "exit 1;; esac\necho PASSED\n"
    )
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    ok = cli(
        "slsa",
        "verify",
        ARTIFACT,
        "--provenance",
        PROVENANCE,
        "--source-uri",
        SOURCE,
        "--source-branch",
        "main",
        "--slsa-verifier",
        stub,
    )
    assert ok.code == 0 and "slsa-verifier" in ok.out
    argv = record.read_text().split()
    assert argv[:2] == ["verify-artifact", str(ARTIFACT)]
    assert "--source-uri" in argv and SOURCE in argv and "--source-branch" in argv
    bad = cli(
        "slsa",
        "verify",
        ARTIFACT,
        "--provenance",
        PROVENANCE,
        "--source-uri",
        SOURCE,
        "--source-branch",
        "release",
        "--slsa-verifier",
        stub,
    )
    assert bad.code == 1 and "source branch mismatch" in bad.out


def validate_with_in_toto_attestation(statement: dict) -> None:
    """Parse with the in-toto-attestation protobufs: unknown fields are errors."""
    pb = json_format.Parse(json.dumps(statement), statement_pb2.Statement())
    Statement.copy_from_pb(pb).validate()
    predicate = json_format.Parse(json.dumps(statement["predicate"]), provenance_pb2.Provenance())
    assert predicate.build_definition.build_type
    for dep in predicate.build_definition.resolved_dependencies:
        ResourceDescriptor.copy_from_pb(dep).validate()
    for byproduct in predicate.run_details.byproducts:
        ResourceDescriptor.copy_from_pb(byproduct).validate()


def test_attest_key_signed_statement_is_valid_slsa_v1(signed: Path, cli) -> None:
    r = cli(
        "slsa",
        "attest",
        "--subject",
        "models/**",
        "--key",
        "keys/trainer",
        "--layout",
        "root.layout",
        "--layout-key",
        "keys/owner.pub",
        "--repository",
        "https://github.com/acme/models",
        "--ref",
        "refs/heads/main",
        "-o",
        "model.intoto.jsonl",
        "--json",
    )
    assert r.code == 0, r.err
    statement = json.loads(r.out)["statement"]
    validate_with_in_toto_attestation(statement)
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert {s["name"] for s in statement["subject"]} == {
        "models/model.safetensors",
        "models/config.json",
    }
    build = statement["predicate"]["buildDefinition"]
    deps = {d.get("name") for d in build["resolvedDependencies"]}
    assert "data/raw/digits.csv.gz" in deps and "steps/train.py" in deps
    assert "data/processed/X_train.npy" not in deps  # produced inside the pipeline
    assert build["externalParameters"]["steps"]["train"]["epochs"] == 60
    assert len(statement["predicate"]["runDetails"]["byproducts"]) == 3
    meta = statement["predicate"]["runDetails"]["metadata"]
    assert meta["startedOn"] <= meta["finishedOn"]

    def key_verify(source: str, key: str, *extra: str):
        return cli(
            "slsa",
            "verify",
            "models/model.safetensors",
            "--provenance",
            "model.intoto.jsonl",
            "--source-uri",
            source,
            "--key",
            key,
            *extra,
        )

    good = key_verify("github.com/acme/models", "keys/trainer.pub", "--source-branch", "main")
    assert good.code == 0 and "built-in key verifier" in good.out, good.out + good.err
    wrong_key = key_verify("github.com/acme/models", "keys/evaluator.pub")
    assert wrong_key.code == 1 and "does not verify" in wrong_key.out
    wrong_source = key_verify("github.com/evil/models", "keys/trainer.pub")
    assert wrong_source.code == 1 and "source" in wrong_source.out
    Path("models/model.safetensors").write_bytes(b"swapped")
    swapped = key_verify("github.com/acme/models", "keys/trainer.pub")
    assert swapped.code == 1 and "no subject has the artifact's sha256" in swapped.out


def test_attest_in_github_actions_takes_builder_and_invocation_from_env(
    signed: Path, cli, monkeypatch
) -> None:
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/models",
        "GITHUB_RUN_ID": "42",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_REF": "refs/tags/v1.0.0",
        "GITHUB_WORKFLOW_REF": "acme/models/.github/workflows/train.yml@refs/tags/v1.0.0",
        "GITHUB_SERVER_URL": "https://github.com",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    r = cli(
        "slsa",
        "attest",
        "--subject",
        "models/**",
        "--key",
        "keys/trainer",
        *LAYOUT,
        "-o",
        "p.intoto.jsonl",
        "--json",
    )
    assert r.code == 0, r.err
    pred = json.loads(r.out)["statement"]["predicate"]
    assert pred["runDetails"]["builder"]["id"] == (
        "https://github.com/acme/models/.github/workflows/train.yml@refs/tags/v1.0.0"
    )
    assert pred["runDetails"]["metadata"]["invocationId"].endswith("/actions/runs/42/attempts/2")
    assert (
        pred["buildDefinition"]["externalParameters"]["repository"]
        == "https://github.com/acme/models"
    )


def test_sigstore_signing_without_ambient_identity_is_a_clear_error(
    signed: Path, cli, monkeypatch
) -> None:
    for name in list(os.environ):
        if name.startswith(("ACTIONS_ID_TOKEN", "SIGSTORE_ID_TOKEN", "GOOGLE_")):
            monkeypatch.delenv(name)
    r = cli(
        "slsa", "attest", "--subject", "models/**", "--sigstore", *LAYOUT, "-o", "p.sigstore.json"
    )
    assert r.code == 2 and "ambient OIDC identity" in r.err
    assert not Path("p.sigstore.json").exists()


def test_attest_needs_exactly_one_signing_method(signed: Path, cli) -> None:
    assert cli("slsa", "attest", "--subject", "models/**", *LAYOUT, "-o", "x").code == 2
    r = cli(
        "slsa", "attest", "--subject", "nothing/**", "--key", "keys/trainer", *LAYOUT, "-o", "x"
    )
    assert r.code == 2 and "matched no file" in r.err
    assert not Path("x").exists()


def test_attest_refuses_a_chain_that_does_not_verify(signed: Path, cli) -> None:
    """Provenance is built only from what verified: an unsigned (edited) link stops it."""
    link = next(Path(".provenance/links").glob("train.*.link"))
    env = json.loads(link.read_bytes())
    payload = json.loads(base64.b64decode(env["payload"]))
    payload["environment"]["parameters"] = '{"epochs": 1}'
    env["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    link.write_text(json.dumps(env))
    args = ("--subject", "models/**", "--key", "keys/trainer", *LAYOUT, "-o", "p.intoto.jsonl")
    r = cli("slsa", "attest", *args)
    assert r.code == 1 and "step 'train' needs 1 link(s)" in r.err
    assert not Path("p.intoto.jsonl").exists()


def test_attest_never_signs_a_file_no_verified_step_recorded(signed: Path, cli) -> None:
    """A file planted after the run, outside the product directories verify checks, is selected
    by the subject pattern; it is refused by name (exit 1) and no provenance is written."""
    Path("checkpoints").mkdir()
    Path("checkpoints/evil.safetensors").write_bytes(b"planted")
    assert cli("verify", *LAYOUT).code == 0  # no step claims it: verify has no reason to look
    args = ("--subject", "**/*.safetensors", "--key", "keys/trainer", *LAYOUT, "-o", "p.jsonl")
    r = cli("slsa", "attest", *args)
    assert r.code == 1, r.err
    assert (
        "'checkpoints/evil.safetensors'" in r.err and "not a product of any verified step" in r.err
    )
    assert not Path("p.jsonl").exists()
    ok = cli("slsa", "attest", "--subject", "models/*.safetensors", "--key", "keys/trainer",
             *LAYOUT, "-o", "p.jsonl")  # fmt: skip
    assert ok.code == 0, ok.err


def test_attest_refuses_a_subject_changed_after_verification(signed: Path) -> None:
    """The subjects are hashed after verify: a model swapped in between is not signed."""
    from provenance.attest.slsa.build import build_statement
    from provenance.errors import VerificationError
    from provenance.verification import verify as verify_chain

    result = verify_chain("root.layout", ["keys/owner.pub"], ".provenance/links", ".")
    assert result.ok, result.verdict
    Path("models/model.safetensors").write_bytes(b"swapped after verify")
    with pytest.raises(
        VerificationError,
        match=r"'models/model.safetensors': sha256 .* on disk, but the verified chain ends with .* "
        r"\(recorded by step 'train'\)",
    ):
        build_statement(["models/**"], result, ".")


def test_attest_refuses_weights_a_later_step_replaced(tmp_path: Path) -> None:
    """train makes A, evaluate (allowed to modify models/*) leaves B; verify passes on B. The
    file put back to A after verify is recorded by a verified step, but not what the chain
    ends with: it is not signed."""
    from provenance.attest.slsa.build import build_statement
    from provenance.errors import VerificationError
    from provenance.layout import Rule, StepDef
    from tests.chain_sim import ChainSimulator, sha256

    sim = ChainSimulator()
    old = sim.steps[2]
    products = (*old.products, Rule("modify", "models/*"))
    sim.steps[2] = StepDef(old.name, old.functionaries, 1, old.materials, products)
    first = sim.files["models/model.safetensors"]
    sim.files["models/model.safetensors"] = b"weights, fine-tuned by evaluate"
    sim.link("evaluate").products["models/model.safetensors"] = sha256(
        sim.files["models/model.safetensors"]
    )
    result = sim.verify(tmp_path)
    assert result.ok, [f.render() for f in result.failures]
    model = tmp_path / "base" / "models" / "model.safetensors"
    model.write_bytes(first)  # train's weights, put back after verify
    with pytest.raises(VerificationError, match=r"ends with .* \(recorded by step 'evaluate'\)"):
        build_statement(["models/model.safetensors"], result, str(tmp_path / "base"))


def _chain_ending_with(products: dict[str, str]) -> tuple[object, list]:
    from types import SimpleNamespace

    from provenance.links import LinkData

    step = SimpleNamespace(name="train", expected_materials=[], expected_products=[])
    link = LinkData("train", [], {}, {p: {"sha256": d} for p, d in products.items()}, {}, {})
    return SimpleNamespace(layout_obj=SimpleNamespace(steps=[step])), [link]


def test_a_file_fetched_from_a_verified_object_is_signed_under_the_objects_name() -> None:
    """The stack demo fetches models from S3: the local file is signed as the one object that
    ends with its path and has its digest, under that object's URI, never under a guess."""
    from provenance.attest.slsa.build import _subjects_the_chain_produced
    from provenance.errors import VerificationError

    a, b = "a" * 64, "b" * 64
    one = _chain_ending_with({"s3://bucket/run-1/models/m.bin": a})
    assert _subjects_the_chain_produced({"models/m.bin": a}, *one) == {
        "s3://bucket/run-1/models/m.bin": a
    }
    with pytest.raises(VerificationError, match="ends with aaaaaaaaaaaa… for s3://bucket/run-1"):
        _subjects_the_chain_produced({"models/m.bin": b}, *one)  # other bytes
    two = _chain_ending_with(
        {"s3://bucket/run-1/models/m.bin": a, "s3://other/candidate/models/m.bin": a}
    )
    with pytest.raises(VerificationError, match="a name 2 verified objects end with"):
        _subjects_the_chain_produced({"models/m.bin": a}, *two)
    with pytest.raises(VerificationError, match="not a product of any verified step"):
        _subjects_the_chain_produced({"m.bin": a}, *_chain_ending_with({"s3://b/xm.bin": a}))
