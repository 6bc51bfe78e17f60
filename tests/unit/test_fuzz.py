"""Fuzz the loaders of every untrusted input: random and mutated layouts, links, DSSE envelopes,
Sigstore bundles and keys. Only the project's typed errors (provenance.errors) may come out, and
each example has a deadline, so a hang or a quadratic blow-up fails the test.

Mutations start from real inputs: the example layout, a link signed here, the SLSA provenance of
slsa-verifier's test binary and a sigstore-python bundle (tests/vectors/, see SOURCES.md).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provenance.errors import ProvenanceError
from provenance.layout import compile_layout, lint, load_yaml
from provenance.links import Rejected, link_payload, read_link, write_link
from provenance.links._model import parse_link
from provenance.signing import dsse, generate, load_public_key, load_signer
from provenance.signing.keys import public_key_from_pem

REPO = Path(__file__).resolve().parents[2]
VECTORS = Path(__file__).resolve().parents[1] / "vectors"
SLSA_BUNDLE = (
    VECTORS / "slsa-verifier/gha_generic/v2.1.0/binary-linux-amd64-workflow_dispatch.intoto.jsonl"
)
WHEEL_BUNDLE = VECTORS / "sigstore-python/bundle_v3_github.whl.sigstore"
TRUSTED_ROOT = VECTORS / "sigstore-python/trusted_root.production.json"

# A deadline per example bounds the time (a hang fails instead of stalling the suite); the
# example counts keep the whole file around a minute on a busy 2-core machine.
FAST = settings(
    deadline=timedelta(seconds=5),
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SLOW = settings(FAST, max_examples=40)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Keys, the example layout beside them, a signed link, a key-signed statement."""
    root = tmp_path_factory.mktemp("fuzz")
    for name in ("owner", "data-eng", "trainer", "evaluator"):
        generate(name, str(root / "keys"))
    (root / "layouts").mkdir()
    shutil.copy(REPO / "layouts" / "train.yaml", root / "layouts" / "train.yaml")
    signer = load_signer(str(root / "keys" / "trainer"))
    payload = link_payload(
        "train",
        ["python", "steps/train.py"],
        {"data/processed/train.npz": {"sha256": "a" * 64}},
        {"models/model.safetensors": {"sha256": "b" * 64}},
        {"return-value": 0},
        {"pipeline_run_id": "r1", "patterns": {"products": ["models/**"]}},
    )
    links = root / "links"
    link_path = write_link(payload, signer, "train", str(links))
    artifact = root / "artifact.bin"
    artifact.write_bytes(b"not the binary the provenance is about")
    return {
        "root": root,
        "layout_text": (root / "layouts" / "train.yaml").read_bytes(),
        "signer": signer,
        "key": signer.public_key,
        "link": Path(link_path).read_bytes(),
        "artifact": str(artifact),
        "public_pem": (root / "keys" / "trainer.pub").read_bytes(),
        "private_pem": (root / "keys" / "trainer").read_bytes(),
    }


def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, byte) edits: 0 flip a byte, 1 insert one, 2 delete one, 3 truncate."""
    buf = bytearray(data)
    for kind, pos, value in edits:
        if not buf:
            break
        i = pos % len(buf)
        if kind == 0:
            buf[i] ^= value or 1
        elif kind == 1:
            buf.insert(i, value)
        elif kind == 2:
            del buf[i]
        else:
            del buf[i:]
    return bytes(buf)


EDITS = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 1 << 20), st.integers(0, 255)),
    min_size=1,
    max_size=6,
)


def typed_errors_only(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ProvenanceError:
        return None


# -- layouts ---------------------------------------------------------------------------------------

KEYS = [
    "expires",
    "functionaries",
    "steps",
    "inspections",
    "name",
    "threshold",
    "materials",
    "products",
    "command",
    "match",
    "from",
    "allow",
    "disallow",
    "create",
    "of",
    "in",
    "with",
    "run",
    "keytype",
    "scheme",
    "keyval",
    "readme",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.dates()
    | st.text(max_size=12)
    | st.sampled_from(["180d", "models/*", "[!]", "../keys/trainer.pub", "trainer", "train"])
)
YAML_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS), children, max_size=6)
    ),
    max_leaves=25,
)


def load_layout(root: Path, text: bytes) -> None:
    path = root / "layouts" / "fuzz.yaml"
    path.write_bytes(text)
    spec = typed_errors_only(load_yaml, str(path))
    if spec is not None:  # what the loader accepts must compile and lint without crashing
        typed_errors_only(lambda: lint(spec))
        typed_errors_only(compile_layout, spec)


@FAST
@given(doc=YAML_VALUES)
def test_fuzz_layout_structures(world: dict[str, Any], doc: Any) -> None:
    load_layout(world["root"], yaml.safe_dump(doc).encode())


@FAST
@given(text=st.text(max_size=400))
def test_fuzz_layout_text(world: dict[str, Any], text: str) -> None:
    load_layout(world["root"], text.encode("utf-8", "surrogatepass"))


@FAST
@given(edits=EDITS)
def test_fuzz_mutated_real_layout(world: dict[str, Any], edits: list[tuple[int, int, int]]) -> None:
    load_layout(world["root"], mutate(world["layout_text"], edits))


@SLOW
@given(
    step=st.dictionaries(
        st.sampled_from(["name", "functionaries", "threshold", "materials", "products"]),
        YAML_VALUES,
        max_size=5,
    )
)
def test_fuzz_layout_step_in_a_real_layout(world: dict[str, Any], step: dict[str, Any]) -> None:
    doc = yaml.safe_load(world["layout_text"])
    doc["steps"].append(step)
    load_layout(world["root"], yaml.safe_dump(doc).encode())


# -- links -----------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["link", "a" * 64, "models/model.safetensors", "../x", "/abs"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "_type",
                    "name",
                    "command",
                    "materials",
                    "products",
                    "byproducts",
                    "environment",
                    "sha256",
                    "patterns",
                    "pipeline_run_id",
                ]
            ),
            children,
            max_size=7,
        )
    ),
    max_leaves=25,
)


def read_link_payload(payload: bytes) -> None:
    # parse_link is what provenance.links.read_link calls once the signature verified.
    link = typed_errors_only(parse_link, payload, "x.link")
    if link is not None:
        link.run_id  # noqa: B018 - the accessors must cope with whatever was parsed
        link.patterns("products")


@FAST
@given(doc=JSON_VALUES)
def test_fuzz_link_structures(doc: Any) -> None:
    read_link_payload(json.dumps(doc).encode())
    read_link_payload(json.dumps({"_type": "link", "name": "train", "materials": doc}).encode())


@FAST
@given(edits=EDITS)
def test_fuzz_mutated_signed_link(world: dict[str, Any], edits: list[tuple[int, int, int]]) -> None:
    """Mutated envelope bytes through the one link reader: signature first, then the payload."""
    blob = mutate(world["link"], edits)
    keys = {world["key"].keyid: world["key"]}
    typed_errors_only(lambda: read_link("train.link", keys, data=blob))


@FAST
@given(edits=EDITS)
def test_fuzz_mutated_payload_signed_again(
    world: dict[str, Any], edits: list[tuple[int, int, int]]
) -> None:
    """A functionary signing a malformed payload: the signature passes, the parser must refuse."""
    env = dsse.parse(world["link"], "train.link")
    payload = mutate(env.payload, edits)
    signed = dsse.dumps(dsse.sign(payload, world["signer"]))
    keys = {world["key"].keyid: world["key"]}
    got = typed_errors_only(lambda: read_link("train.link", keys, data=signed))
    assert not isinstance(got, Rejected)  # the signature is good: parsed, or refused as malformed
    if got is not None:  # what was parsed is what was signed
        assert got.payload == payload and got.envelope == signed


@FAST
@given(
    nest=st.integers(1, 5000),
    number=st.sampled_from(["1e999", "NaN", "-Infinity", "9" * 5000, "0.1", "-0"]),
)
def test_fuzz_absurd_numbers_and_nesting_in_links(nest: int, number: str) -> None:
    payload = (
        '{"_type":"link","name":"t","environment":{"x":' + "[" * nest + number + "]" * nest + "}}"
    ).encode()
    read_link_payload(payload)


# -- Sigstore bundles and key-signed statements ----------------------------------------------------


def verify_provenance(world: dict[str, Any], blob: bytes, key: Any = None) -> None:
    from provenance.attest.slsa._formats import load
    from provenance.attest.slsa.verify import Expectations, verify_builtin

    path = world["root"] / "fuzz.intoto.jsonl"
    path.write_bytes(blob)
    if typed_errors_only(load, str(path)) is None:
        return
    expect = Expectations("github.com/slsa-framework/example-package")
    result = typed_errors_only(
        lambda: verify_builtin(
            world["artifact"], str(path), expect, trusted_root=str(TRUSTED_ROOT), key=key
        )
    )
    # The artifact is not the one the provenance is about: nothing may ever pass.
    assert result is None or not result.ok


@SLOW
@given(edits=EDITS)
def test_fuzz_mutated_sigstore_slsa_bundle(
    world: dict[str, Any], edits: list[tuple[int, int, int]]
) -> None:
    verify_provenance(world, mutate(SLSA_BUNDLE.read_bytes(), edits))


@SLOW
@given(edits=EDITS)
def test_fuzz_mutated_hashedrekord_bundle(
    world: dict[str, Any], edits: list[tuple[int, int, int]]
) -> None:
    verify_provenance(world, mutate(WHEEL_BUNDLE.read_bytes(), edits))


@SLOW
@given(doc=JSON_VALUES, field=st.sampled_from(["verificationMaterial", "dsseEnvelope", "x"]))
def test_fuzz_bundle_fields_replaced(world: dict[str, Any], doc: Any, field: str) -> None:
    bundle = json.loads(SLSA_BUNDLE.read_text())
    bundle[field] = doc
    verify_provenance(world, json.dumps(bundle).encode())


@FAST
@given(edits=EDITS)
def test_fuzz_mutated_key_signed_statement(
    world: dict[str, Any], edits: list[tuple[int, int, int]]
) -> None:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "artifact.bin", "digest": {"sha256": "0" * 64}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {}, "runDetails": {"builder": {"id": "x"}}},
    }
    payload = mutate(json.dumps(statement).encode(), edits)
    signed = dsse.dumps(dsse.sign(payload, world["signer"])) + b"\n"
    verify_provenance(world, signed, key=world["key"])
    verify_provenance(world, mutate(signed, edits), key=world["key"])


# -- keys ------------------------------------------------------------------------------------------


def load_keys(world: dict[str, Any], blob: bytes) -> None:
    path = world["root"] / "keys" / "fuzz"
    path.write_bytes(blob)
    os.chmod(path, 0o600)
    typed_errors_only(load_public_key, str(path))
    typed_errors_only(load_signer, str(path))
    typed_errors_only(public_key_from_pem, blob, str(path))


@FAST
@given(edits=EDITS, which=st.sampled_from(["public_pem", "private_pem"]))
def test_fuzz_mutated_pem_keys(
    world: dict[str, Any], edits: list[tuple[int, int, int]], which: str
) -> None:
    load_keys(world, mutate(world[which], edits))


@FAST
@given(
    body=st.binary(max_size=200),
    label=st.sampled_from(["PRIVATE KEY", "PUBLIC KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]),
)
def test_fuzz_random_pem_bodies(world: dict[str, Any], body: bytes, label: str) -> None:
    import base64

    text = base64.encodebytes(body).decode()
    load_keys(world, f"-----BEGIN {label}-----\n{text}-----END {label}-----\n".encode())
