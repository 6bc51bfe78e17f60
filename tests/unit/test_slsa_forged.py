"""Certificate-signed provenance from a private instance (tests/slsa_forge.py), as an attacker
who controls a workflow would write it: the certificate is genuine, the statement hostile.

Each row is an attack a red-team pass found or tried against `provenance slsa verify`; each
asserts the exit code and the reason, and that a PASS never names what was only claimed.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.slsa_forge import GH, Instance, statement_v1, workflow_facts

VECTORS = Path(__file__).parents[1] / "vectors"
A = f"{GH}/org/repo/.github/workflows/build.yml@refs/heads/main"
B = f"{GH}/other/builder/.github/workflows/release.yml@refs/tags/v1.0.0"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("forge")
    instance = Instance(root / "pki")
    artifact = root / "artifact.bin"
    artifact.write_bytes(b"model weights\n")
    return {
        "instance": instance,
        "root": instance.root(),
        "artifact": artifact,
        "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest(),
        "dir": root,
    }


def _run(cli, world: dict[str, Any], bundle: dict[str, Any], *flags: str):  # type: ignore[no-untyped-def]
    path = world["dir"] / f"b{len(list(world['dir'].glob('b*.json')))}.json"
    path.write_text(json.dumps(bundle))
    argv = ["slsa", "verify", str(world["artifact"]), "--provenance", str(path)]
    argv += ["--trusted-root", str(world["root"]), "--builtin", *flags]
    return cli(*argv)


def _statement(world: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return statement_v1(world["sha256"], **kw)


def test_genuine_attestation_passes_and_labels_the_runner_a_claim(cli, world) -> None:
    bundle = world["instance"].bundle(_statement(world), workflow_facts())
    r = _run(cli, world, bundle, "--repo", "org/repo")
    assert r.code == 0, r.out + r.err
    assert f"verified: signed by {A} from {GH}/org/repo@refs/heads/main" in r.out
    assert f"claimed by the statement: builder {GH}/actions/runner/github-hosted" in r.out


FLAGS_NAMING_A_OR_B = [
    (),
    ("--builder-id", A),
    ("--builder-id", B),
    ("--signer-workflow", A),
    ("--signer-workflow", B),
    ("--signer-repo", "org/repo"),
    ("--signer-repo", "other/builder"),
    ("--builder-id", B, "--signer-workflow", A),
]


@pytest.mark.parametrize("flags", FLAGS_NAMING_A_OR_B, ids=lambda f: " ".join(f) or "no flags")
def test_signed_by_a_claiming_builder_b_fails_naming_both(cli, world, flags) -> None:
    bundle = world["instance"].bundle(_statement(world, builder=B), workflow_facts())
    r = _run(cli, world, bundle, "--repo", "org/repo", *flags)
    assert r.code == 1, r.out + r.err
    assert A in r.out and B in r.out and "builder id the statement names" in r.out


def _internal(statement: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    statement["predicate"]["buildDefinition"]["internalParameters"] = value
    return statement


def _ext(statement: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    statement["predicate"]["buildDefinition"]["externalParameters"][key] = value
    return statement


def _deps(statement: dict[str, Any], deps: list[dict[str, Any]]) -> dict[str, Any]:
    statement["predicate"]["buildDefinition"]["resolvedDependencies"] = deps
    return statement


def _workflow_repo(statement: dict[str, Any], repo: str) -> dict[str, Any]:
    statement["predicate"]["buildDefinition"]["externalParameters"]["workflow"]["repository"] = repo
    return statement


# (id, edit of the statement, extra flags, exit code, words in the output)
ATTACKS: list[tuple[str, Any, tuple[str, ...], int, str]] = [
    (
        "trigger-split-between-two-places",  # the check read one place, the inputs another
        lambda s: _internal(
            s,
            {
                "github": {"event_name": "push"},
                "GITHUB_EVENT_NAME": "workflow_dispatch",
                "GITHUB_EVENT_PAYLOAD": {"inputs": {"release_version": "v9"}},
            },
        ),
        ("--build-workflow-input", "release_version=v9"),
        1,
        "trigger in the statement",
    ),
    (
        "commit-of-the-source-in-a-second-dependency",
        lambda s: _deps(
            s,
            [
                {"uri": f"git+{GH}/evil/x@refs/heads/main", "digest": {"gitCommit": "a" * 40}},
                {"uri": f"git+{GH}/org/repo@refs/heads/main", "digest": {"gitCommit": "c" * 40}},
            ],
        ),
        (),
        1,
        "source commit in the statement",
    ),
    (
        "source-uri-naming-another-repository",
        lambda s: _ext(s, "source", {"uri": f"git+{GH}/victim/other@refs/tags/v9"}),
        (),
        1,
        "source repository in the statement",
    ),
    (
        "workflow-repository-with-an-at-suffix",
        lambda s: _workflow_repo(s, f"{GH}/org/repo@evil/other"),
        (),
        1,
        "source repository in the statement",
    ),
    (
        "workflow-repository-spelled-otherwise",
        lambda s: _workflow_repo(s, "git+http://github.com/org/repo.git/"),
        (),
        1,
        "source repository in the statement",
    ),
    (
        "builder-named-by-a-repository",
        lambda s: s["predicate"]["runDetails"]["builder"].update(id=f"{GH}/org/repo") or s,
        (),
        1,
        "builder id the statement names",
    ),
    (
        "self-hosted-runner-claimed-on-a-hosted-certificate",
        lambda s: (
            s["predicate"]["runDetails"]["builder"].update(id=f"{GH}/actions/runner/self-hosted")
            or s
        ),
        (),
        1,
        "Runner Environment",
    ),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_hostile_statement_under_a_genuine_certificate_is_refused(cli, world, attack) -> None:
    _id, edit, flags, code, words = attack
    bundle = world["instance"].bundle(edit(_statement(world)), workflow_facts())
    r = _run(cli, world, bundle, "--repo", "org/repo", *flags)
    assert r.code == code, r.out + r.err
    assert words in r.out + r.err and "Traceback" not in r.err


def _text(world: dict[str, Any]) -> str:
    return json.dumps(_statement(world))


RUNNER = f'"id": "{GH}/actions/runner/github-hosted"'
# Statements another verifier would read differently, or that are not SLSA v1: exit 3.
PARSER_DIFFERENTIALS = [
    (
        "key-differing-in-case",
        lambda t: t.replace(RUNNER, RUNNER + ', "ID": "https://evil"'),
        "unknown",
    ),
    ("duplicate-key", lambda t: t.replace(RUNNER, '"id": "https://evil", ' + RUNNER), "duplicate"),
    (
        "second-subject-list-in-another-case",
        lambda t: t.replace('"predicateType"', '"Subject": [], "predicateType"', 1),
        "unknown",
    ),
    (
        "no-build-definition",
        lambda t: json.dumps(
            {**json.loads(t), "predicate": {"runDetails": json.loads(t)["predicate"]["runDetails"]}}
        ),
        "builddefinition",
    ),
    (
        "subject-digest-not-an-object",
        lambda t: t.replace('"digest": {"sha256"', '"digest": "x", "d": {"sha256"'),
        "digest",
    ),
]


@pytest.mark.parametrize("case", PARSER_DIFFERENTIALS, ids=[c[0] for c in PARSER_DIFFERENTIALS])
def test_statement_read_differently_elsewhere_is_malformed(cli, world, case) -> None:
    _id, edit, words = case
    payload = edit(_text(world)).encode()
    bundle = world["instance"].bundle(payload, workflow_facts())
    r = _run(cli, world, bundle, "--repo", "org/repo")
    assert r.code == 3, r.out + r.err
    assert words in r.err.lower() and "Traceback" not in r.err


def test_inputs_a_repository_workflow_wrote_are_shown_as_its_claims(cli, world) -> None:
    statement = _internal(
        _statement(world, trigger="workflow_dispatch"),
        {
            "github": {"event_name": "workflow_dispatch"},
            "GITHUB_EVENT_NAME": "workflow_dispatch",
            "GITHUB_EVENT_PAYLOAD": {"inputs": {"release_version": "v9"}},
        },
    )
    bundle = world["instance"].bundle(statement, workflow_facts(trigger="workflow_dispatch"))
    r = _run(
        cli,
        world,
        bundle,
        "--repo",
        "org/repo",
        "--build-workflow-input",
        "release_version=v9",
        "--json",
    )
    doc = json.loads(r.out)
    assert r.code == 0 and doc["facts"]["claimed"]["workflow_inputs"] == {"release_version": "v9"}
    assert "workflow_inputs" not in doc["facts"]["verified"]


def test_versioned_tag_needs_a_v_tag_as_slsa_verifier(cli, world) -> None:
    facts = workflow_facts(ref="refs/tags/01")
    bundle = world["instance"].bundle(_statement(world, ref="refs/tags/01"), facts)
    r = _run(cli, world, bundle, "--repo", "org/repo", "--source-versioned-tag", "v1")
    assert r.code == 1 and "source versioned tag" in r.out


def test_other_payload_type_is_refused(cli, world) -> None:
    bundle = world["instance"].bundle(
        _statement(world), workflow_facts(), payload_type="application/vnd.other+json"
    )
    r = _run(cli, world, bundle, "--repo", "org/repo")
    assert r.code == 1 and "DSSE payload type" in r.out


def test_key_flag_refuses_a_keyless_bundle(cli, world, tmp_path: Path) -> None:
    """--key asks for that key's signature; a genuine workflow signature is not it."""
    from provenance.signing import generate

    generate("k", str(tmp_path), key_type="ecdsa")
    bundle = world["instance"].bundle(_statement(world), workflow_facts())
    r = _run(cli, world, bundle, "--repo", "org/repo", "--key", str(tmp_path / "k.pub"))
    assert r.code == 1 and "not signed by the key given" in r.out


def test_key_signed_envelope_with_another_payload_type_is_refused(cli, world, tmp_path) -> None:
    from provenance.signing import dsse, generate, load_signer

    generate("k", str(tmp_path), key_type="ecdsa")
    statement = _statement(world)
    statement["predicate"]["buildDefinition"]["externalParameters"] = {
        "repository": f"{GH}/org/repo"
    }
    envelope = dsse.sign(
        json.dumps(statement).encode(), load_signer(str(tmp_path / "k")), "application/x-other"
    )
    path = tmp_path / "p.intoto.jsonl"
    path.write_bytes(dsse.dumps(envelope) + b"\n")
    r = cli(
        "slsa",
        "verify",
        str(world["artifact"]),
        "--provenance",
        str(path),
        "--key",
        str(tmp_path / "k.pub"),
        "--repo",
        "org/repo",
    )
    assert r.code == 1 and "DSSE payload type" in r.out


def test_absurd_log_entry_time_is_a_refusal_not_a_crash(cli, tmp_path: Path) -> None:
    npm = VECTORS / "gh"
    bundle = json.loads((npm / "sigstore-js-2.1.0-bundle.json").read_text())
    entry = copy.deepcopy(bundle)
    entry["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = "1000000000000000000"
    path = tmp_path / "npm.json"
    path.write_text(json.dumps(entry))
    r = cli(
        "slsa",
        "verify",
        str(npm / "sigstore-js-2.1.0.tgz"),
        "--provenance",
        str(path),
        "--builtin",
        "--repo",
        "sigstore/sigstore-js",
        "--digest-alg",
        "sha512",
    )
    assert r.code == 1 and "integratedTime" in r.out, r.out + r.err


def test_a_trusted_root_keeps_verification_built_in(cli, world, tmp_path: Path) -> None:
    """slsa-verifier takes no trusted root: giving one must not hand off and drop it."""
    stub = tmp_path / "slsa-verifier"
    stub.write_text("#!/bin/sh\necho PASSED\nexit 0\n")
    stub.chmod(0o755)
    bundle = world["instance"].bundle(_statement(world), workflow_facts())
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle))
    r = cli(
        "slsa",
        "verify",
        str(world["artifact"]),
        "--provenance",
        str(path),
        "--repo",
        "org/repo",
        "--trusted-root",
        str(world["root"]),
        "--slsa-verifier",
        str(stub),
    )
    assert r.code == 0 and "built-in" in r.out and "slsa-verifier (" not in r.out, r.out
