"""Layout YAML: strict schema with file:line messages, secure compilation, lint, fuzzing."""

from __future__ import annotations

import base64
import contextlib
import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provenance.errors import ProvenanceError
from provenance.layout import compile_layout, lint, load_yaml
from provenance.links._model import parse_link

GOOD = Path(__file__).resolve().parents[2] / "layouts" / "train.yaml"


def write(project: Path, text: str, name: str = "l.yaml") -> str:
    path = project / "layouts" / name
    path.write_text(text)
    return str(path)


def test_example_layout_compiles_with_closed_rule_lists(project: Path) -> None:
    layout = compile_layout(load_yaml("layouts/train.yaml"))
    train = layout.steps[1]
    assert train.expected_materials == [
        [
            "MATCH",
            ".provenance/datasets/data_processed-*.manifest",
            "WITH",
            "PRODUCTS",
            "FROM",
            "prepare",
        ],
        ["DISALLOW", ".provenance/datasets/data_processed-*.manifest"],
        ["MATCH", "data/processed/*", "WITH", "PRODUCTS", "FROM", "prepare"],
        ["DISALLOW", "data/processed/*"],
        ["ALLOW", "steps/train.py"],
        ["DISALLOW", "*"],
    ]
    assert all(s.expected_products[-1] == ["DISALLOW", "*"] for s in layout.steps)
    assert lint(load_yaml("layouts/train.yaml")) == []


def test_match_prefixes_and_of_materials(project: Path) -> None:
    text = GOOD.read_text().replace(
        '      - match: "data/processed/*"\n        from: prepare\n      - allow: "steps/train.py"',
        '      - match: "*.npy"\n        in: data/processed\n        with: data/processed\n'
        '        of: products\n        from: prepare\n      - allow: "steps/train.py"',
    )
    layout = compile_layout(load_yaml(write(project, text)))
    assert layout.steps[1].expected_materials[2:4] == [
        [
            "MATCH",
            "*.npy",
            "IN",
            "data/processed",
            "WITH",
            "PRODUCTS",
            "IN",
            "data/processed",
            "FROM",
            "prepare",
        ],
        ["DISALLOW", "data/processed/*.npy"],
    ]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (("threshold: 1", "treshold: 1"), "unknown key 'treshold'"),
        (("threshold: 1", "threshold: 0"), "threshold must be an integer >= 1"),
        (("threshold: 1", "threshold: yes"), "threshold must be an integer >= 1"),
        (("functionaries: [trainer]", "functionaries: [trainr]"), "unknown functionary 'trainr'"),
        (
            (
                '        from: prepare\n      - allow: "steps/train.py"',
                '        from: prep\n      - allow: "steps/train.py"',
            ),
            "unknown step 'prep'",
        ),
        (("  - name: train", "  - name: prepare"), "duplicate step or inspection name 'prepare'"),
        (("expires: 180d", "expires: soon"), "expires must be a date"),
        (
            ('      - allow: "steps/prepare.py"', '      - permit: "steps/prepare.py"'),
            "needs exactly one of",
        ),
        (("  trainer: ../keys/trainer.pub", "  trainer: ../keys/nope.pub"), "not found"),
        (("  trainer: ../keys/trainer.pub", "  trainer: ../keys/trainer"), "is a private key"),
        (("expires: 180d", "expires: [1]"), "expires must be a single value"),
        (("steps:", "stages: 1\nsteps:"), "unknown key 'stages'"),
        (
            ("  data-eng: ../keys/data-eng.pub", "  data-eng: ../keys/data-eng.pub\n  data-eng: x"),
            "duplicate functionary 'data-eng'",
        ),
    ],
)
def test_schema_errors_name_file_line_and_expectation(project: Path, cli, change, words) -> None:
    old, new = change
    text = GOOD.read_text()
    assert old in text
    path = write(project, text.replace(old, new, 1))
    r = cli("layout", "lint", path)
    assert r.code == 3, r.out + r.err
    assert words in r.err and f"{path}:" in r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1


def test_line_number_points_at_the_offending_key(project: Path) -> None:
    text = GOOD.read_text().replace("threshold: 1", "treshold: 1")
    line = text.splitlines().index("    treshold: 1") + 1
    with pytest.raises(ProvenanceError, match=f"l.yaml:{line}: unknown key 'treshold'"):
        load_yaml(write(project, text))


def test_yaml_aliases_and_bad_syntax_are_refused(project: Path) -> None:
    with pytest.raises(ProvenanceError, match="aliases are not allowed"):
        load_yaml(write(project, "a: &x [1]\nb: *x\n"))
    with pytest.raises(ProvenanceError, match="invalid YAML"):
        load_yaml(write(project, "steps: [\n"))


def test_lint_reports_unused_keys_expiry_and_unreachable_rules(project: Path, cli) -> None:
    text = (
        GOOD.read_text()
        .replace("expires: 180d", "expires: 3y")
        .replace(
            "  evaluator: ../keys/evaluator.pub",
            "  evaluator: ../keys/evaluator.pub\n  owner: ../keys/owner.pub",
        )
        .replace(
            '      - allow: "data/raw/*"',
            '      - allow: "data/raw/*"\n      - disallow: "data/raw/x"',
        )
    )
    r = cli("layout", "lint", write(project, text), "--json")
    doc = json.loads(r.out)
    codes = {f["code"] for f in doc["findings"]}
    assert r.code == 1 and {"expiry", "unused-key", "unreachable"} <= codes


def test_lint_refuses_match_after_allow_of_same_files(project: Path, cli) -> None:
    text = GOOD.read_text().replace(
        '      - match: "models/*"\n        from: train',
        '      - allow: "models/*"\n      - match: "models/*"\n        from: train',
    )
    r = cli("layout", "lint", write(project, text))
    assert r.code == 1 and "fail-open" in r.out and "a tampered artifact is accepted" in r.out


def test_lint_refuses_matching_against_a_later_step(project: Path, cli) -> None:
    text = GOOD.read_text().replace(
        '      - match: "data/processed/*"\n        from: prepare\n      - allow: "steps/train.py"',
        '      - match: "metrics/*"\n        from: evaluate\n      - allow: "steps/train.py"',
    )
    r = cli("layout", "lint", write(project, text))
    assert r.code == 1 and "does not run before it" in r.out


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.floats(allow_nan=False),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "expires",
                    "functionaries",
                    "steps",
                    "name",
                    "threshold",
                    "materials",
                    "products",
                    "match",
                    "from",
                    "allow",
                    "of",
                    "inspections",
                    "run",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=YAML_VALUES)
def test_fuzz_yaml_loader_raises_only_typed_errors(doc) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "l.yaml")
        path.write_text(yaml.safe_dump(doc))
        with contextlib.suppress(ProvenanceError):
            load_yaml(str(path))


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=300))
def test_fuzz_yaml_loader_on_arbitrary_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "l.yaml")
        path.write_text(text)
        with contextlib.suppress(ProvenanceError):
            load_yaml(str(path))


LINK_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3)
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
                    "link",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=15,
)


@settings(max_examples=200, deadline=None)
@given(doc=LINK_VALUES)
def test_fuzz_link_loader_raises_only_typed_errors(doc) -> None:
    with contextlib.suppress(ProvenanceError):
        parse_link(json.dumps(doc).encode(), "x.link")


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_fuzz_envelope_parser_raises_only_typed_errors(data: bytes) -> None:
    from provenance.signing import dsse

    for blob in (
        data,
        json.dumps(
            {
                "payload": base64.b64encode(data).decode(),
                "payloadType": "x",
                "signatures": [{"sig": "AA=="}],
            }
        ).encode(),
    ):
        with contextlib.suppress(ProvenanceError):
            dsse.parse(blob, "x.link")


def _trainer_key_inline(project: Path, upper: bool) -> str:
    """trainer.pub written inline as securesystemslib JSON, its hex in another case."""
    from provenance.signing import load_public_key

    key = load_public_key(str(project / "keys" / "trainer.pub"))
    public = key.keyval["public"].upper() if upper else key.keyval["public"]
    return f'\n    keytype: ed25519\n    scheme: ed25519\n    keyval:\n      public: "{public}"'


@pytest.mark.parametrize(
    "second",
    [
        "../keys/trainer.pub",  # the same file twice
        "INLINE-UPPER",  # the same key inline, upper-case hex: another key id
        "INLINE",
    ],
)
def test_one_public_key_under_two_functionaries_is_refused(project: Path, cli, second: str) -> None:
    """Two names with one key would let one person meet a threshold of two."""
    if second.startswith("INLINE"):
        second = _trainer_key_inline(project, upper=second.endswith("UPPER"))
    text = GOOD.read_text().replace(
        "  trainer: ../keys/trainer.pub\n", f"  trainer: ../keys/trainer.pub\n  bob: {second}\n"
    )
    path = write(project, text)
    r = cli("layout", "lint", path)
    assert r.code == 3, r.out + r.err
    assert "functionaries 'trainer' and 'bob' have the same public key" in r.err
    assert f"{path}:" in r.err and "Traceback" not in r.err
    signed = cli("layout", "sign", path, "--key", "keys/owner", "-o", "root.layout")
    assert signed.code == 3 and not Path("root.layout").exists()


_GLOB = "is a directory, not a pattern"
_UNNORMALISED = "is not a normalised relative directory"


@pytest.mark.parametrize(
    ("prefix", "why"),
    [
        # MATCH reads `in:` literally; the DISALLOW added after it would read it as a glob.
        ("out[1]", _GLOB),
        ("data/*", _GLOB),
        ("run?", _GLOB),
        # in-toto compares the prefix with (normalised) artifact paths as written: './x' would
        # match nothing, and the MATCH and the DISALLOW after it would both be dead.
        ("./data/processed", _UNNORMALISED),
        ("data/processed/.", _UNNORMALISED),
        ("/data/processed", _UNNORMALISED),
        ("data//processed", _UNNORMALISED),
        ("data/processed//", _UNNORMALISED),
        ("data/../data/processed", _UNNORMALISED),
        ("data/processed ", "has spaces around it or invisible characters"),
        ("data/processed\u200b", "has spaces around it or invisible characters"),
    ],
)
def test_a_match_prefix_that_is_not_a_plain_directory_is_refused(
    project: Path, cli, prefix: str, why: str
) -> None:
    text = GOOD.read_text().replace(
        '      - match: "data/processed/*"\n        from: prepare\n      - allow: "steps/train.py"',
        f'      - match: "*.npy"\n        in: "{prefix}"\n        with: data/processed\n'
        '        from: prepare\n      - allow: "steps/train.py"',
    )
    path = write(project, text)
    r = cli("layout", "lint", path)
    assert r.code == 3, r.out + r.err
    assert f"'in' prefix '{prefix}' {why}" in r.err
    assert f"{path}:" in r.err and "Traceback" not in r.err
