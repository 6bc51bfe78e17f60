"""The layout's own policy (model, thresholds, functionary names, run-id opt-ins) is parsed once.

It rides in the signed layout's readme as declaration lines that only layout/_policy.py writes and
reads; verification parses them right after the signatures into the LayoutPolicy the result
carries. A malformed, repeated or unknown declaration is a refusal naming the layout (exit 3),
never "no policy". The layout's types validate themselves when built (python-tuf's model).
"""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest

from provenance.errors import LayoutError
from provenance.layout import (
    InspectionDef,
    LayoutPolicy,
    LayoutSpec,
    ModelDecl,
    Rule,
    StepDef,
    Threshold,
    compile_layout,
    load_yaml,
)
from tests.conftest import sign_layout, snapshot, verify

SRC = Path(__file__).resolve().parents[2] / "src" / "provenance"
POLICY_MODULE = SRC / "layout" / "_policy.py"
DECLARATIONS = ("functionaries", "model", "thresholds", "run-id-optional")

LAYOUT = """\
expires: 30d
readme: "Trains the digits model. ml-provenance is named here in prose, which is fine."
functionaries:
  trainer: ../keys/trainer.pub
steps:
  - name: train
    functionaries: [trainer]
    run_id: optional
    products:
      - create: "models/*"
      - create: "metrics.json"
model: {step: train, products: "models/*"}
thresholds:
  - step: train
    file: metrics.json
    require: {accuracy: ">= 0.9"}
"""


def sign_with_declaration(
    yaml_path: str, line: str, *, replace: bool = False, out: str = "root.layout"
) -> None:
    """Sign `yaml_path` (with keys/owner) after adding `line` to its compiled readme, as a
    layout signed by a buggy or newer writer would hold it; `replace` drops the compiled line
    of the same declaration first."""
    from provenance.layout.sign import layout_payload
    from provenance.signing import dsse
    from provenance.signing.keys import load_signer

    layout = compile_layout(load_yaml(yaml_path))
    head = line[: line.index(":") + 1]
    kept = [x for x in layout.readme.splitlines() if not (replace and x.startswith(head))]
    layout.readme = "\n".join([*kept, line])
    envelope = dsse.sign(layout_payload(layout), load_signer("keys/owner"))
    Path(out).write_bytes(dsse.dumps(envelope))


@pytest.fixture
def owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli) -> Path:
    """keys/owner and keys/trainer, layouts/policy.yaml; no links (the policy is read first)."""
    monkeypatch.chdir(tmp_path)
    for name in ("owner", "trainer"):
        assert cli("keygen", name, "--dir", "keys").code == 0
    Path("layouts").mkdir()
    Path("layouts/policy.yaml").write_text(LAYOUT)
    return tmp_path


# --- one module reads and writes the declarations ---------------------------------------------


def readers_of_the_declarations(path: Path, source: str) -> list[str]:
    """What in `source` reads the declaration lines: their text, or an in-toto readme."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for name in DECLARATIONS:
                if f"ml-provenance {name}:" in node.value or node.value == "ml-provenance ":
                    found.append(f"{path}:{node.lineno}: the text of a declaration")
        elif isinstance(node, ast.Attribute) and node.attr == "readme":
            if isinstance(node.ctx, ast.Load):
                found.append(f"{path}:{node.lineno}: reads a readme")
        elif (
            isinstance(node, ast.ImportFrom)
            and (node.module or "").endswith("layout._policy")
            and path.parent.name != "layout"
        ):
            found.append(f"{path}:{node.lineno}: imports layout._policy")
    return found


def test_no_module_but_the_policy_module_reads_the_declarations() -> None:
    found = [
        hit
        for path in sorted(SRC.rglob("*.py"))
        if path != POLICY_MODULE
        for hit in readers_of_the_declarations(path.relative_to(SRC), path.read_text())
    ]
    assert not found, "read the layout's policy from VerificationResult.policy:\n" + "\n".join(
        found
    )
    # and the policy module is where they are (the check above is not vacuous)
    assert readers_of_the_declarations(POLICY_MODULE, POLICY_MODULE.read_text())


@pytest.mark.parametrize(
    "source",
    [
        'MARKER = "ml-provenance model: "',
        "names = parse(layout.readme)",
        "x = result.layout_obj.readme.splitlines()",
        "from provenance.layout._policy import PREFIX",
        'LINE = f"ml-provenance thresholds: {value}"',
    ],
)
def test_the_check_finds_a_second_reader(source: str) -> None:
    assert readers_of_the_declarations(Path("verification/x.py"), source)


def test_the_policy_written_is_the_policy_read(owner: Path) -> None:
    spec = load_yaml("layouts/policy.yaml")
    layout = compile_layout(spec)
    assert layout.readme.splitlines()[0] == spec.readme  # the owner's text comes first
    read = LayoutPolicy.from_layout(layout, "root.layout")
    assert read == LayoutPolicy.from_spec(spec)
    assert read.model == ModelDecl("train", "models/*")
    assert read.thresholds == (Threshold("train", "metrics.json", "accuracy", ">=", 0.9),)
    assert read.run_id_optional == {"train"}
    assert read.names == {spec.functionaries["trainer"].keyid: "trainer"}


def test_a_layout_compiled_elsewhere_has_the_empty_policy() -> None:
    readme = "A layout written by hand.\nml-provenance is mentioned, not declared."
    assert LayoutPolicy.from_readme(readme, steps={"train"}) == LayoutPolicy()
    assert LayoutPolicy().names == {}


def test_verification_carries_the_policy_it_parsed(owner: Path, cli) -> None:
    import provenance

    assert sign_layout(cli, "layouts/policy.yaml").code == 0
    result = provenance.verify("root.layout", ["keys/owner.pub"], check_files_on_disk=False)
    assert result.policy == LayoutPolicy.from_spec(load_yaml("layouts/policy.yaml"))
    assert result.model is result.policy.model
    assert result.to_dict()["model"] == {"step": "train", "products": "models/*"}


# --- a malformed declaration in a signed layout is refused, naming the layout -----------------


@pytest.mark.parametrize(
    ("line", "replace", "problem"),
    [
        ('ml-provenance model: {"step": "train"', True, "model declaration is malformed"),
        ('ml-provenance model: {"step": "train"}', True, "not an object of exactly step and"),
        (
            'ml-provenance model: {"step": "deploy", "products": "models/*"}',
            True,
            "model declaration is malformed: unknown step 'deploy'",
        ),
        (
            'ml-provenance model: {"step": "train", "products": "../models/*"}',
            True,
            "model declaration is malformed: model products:",
        ),
        (
            'ml-provenance model: {"step": "train", "products": "a", "products": "b"}',
            True,
            "duplicate key 'products'",
        ),
        ('ml-provenance model: {"step": "train", "products": "b"}', False, "appears 2 times"),
        ('ml-provenance model:{"step": "train", "products": "b"}', False, "appears 2 times"),
        ("ml-provenance model:", True, "model declaration is malformed: the value is not JSON"),
        ('ml-provenance functionaries: ["trainer"]', True, "functionary names declaration"),
        (
            'ml-provenance functionaries: {"trainer": "' + "0" * 64 + '"}',
            True,
            "key 0000000000000000 is not a key of the layout",
        ),
        (
            'ml-provenance thresholds: [{"step": "train", "file": "metrics.json", '
            '"metric": "accuracy", "op": "=>", "value": 1}]',
            True,
            "thresholds declaration is malformed: operator '=>'",
        ),
        (
            'ml-provenance thresholds: [{"step": "train", "file": "/etc/passwd", '
            '"metric": "accuracy", "op": ">=", "value": 1}]',
            True,
            "threshold file is absolute",
        ),
        ('ml-provenance run-id-optional: ["train", 1]', True, "not a list of step names"),
        ('ml-provenance datasets: ["train"]', False, "'ml-provenance datasets:', which this"),
    ],
)
def test_a_malformed_declaration_in_a_signed_layout_is_refused(
    owner: Path, cli, line: str, replace: bool, problem: str
) -> None:
    sign_with_declaration("layouts/policy.yaml", line, replace=replace)
    before = snapshot(owner)
    r = verify(cli)
    assert r.code == 3, r.out + r.err
    assert "root.layout: " in r.err and problem in r.err
    assert "Traceback" not in r.err and r.out == ""
    assert snapshot(owner) == before
    r = verify(cli, "--json")
    assert r.code == 3 and problem in r.err


def test_a_garbled_model_is_not_read_as_no_model(owner: Path) -> None:
    """It used to read as "declares no model": now the layout is refused, whatever asks."""
    import provenance

    sign_with_declaration("layouts/policy.yaml", "ml-provenance model: null", replace=True)
    with pytest.raises(LayoutError, match=r"root\.layout: the signed layout's model declaration"):
        provenance.verify("root.layout", ["keys/owner.pub"], model_files={})


def test_an_inspection_without_a_command_is_refused(owner: Path, cli) -> None:
    from provenance.layout.sign import layout_payload
    from provenance.signing import dsse
    from provenance.signing.keys import load_signer

    Path("layouts/insp.yaml").write_text(LAYOUT + "inspections:\n  - name: check\n    run: [x]\n")
    layout = compile_layout(load_yaml("layouts/insp.yaml"))
    layout.inspect[0].run = []  # in-toto's own model accepts it
    Path("root.layout").write_bytes(
        dsse.dumps(dsse.sign(layout_payload(layout), load_signer("keys/owner")))
    )
    r = verify(cli)
    assert r.code == 3 and "root.layout: inspection 'check' does not name a command" in r.err


def test_an_owner_readme_line_shaped_like_a_declaration_is_refused(owner: Path, cli) -> None:
    text = LAYOUT.replace(
        'readme: "Trains', 'readme: "ml-provenance model: {\\"step\\": \\"x\\"}\\nTrains'
    )
    Path("layouts/forged.yaml").write_text(text)
    with pytest.raises(LayoutError) as err:
        load_yaml("layouts/forged.yaml")
    assert str(err.value).startswith("layouts/forged.yaml:2: readme line 1 starts with")
    spec = load_yaml("layouts/policy.yaml")
    spec.readme = "ml-provenance thresholds: []"
    with pytest.raises(LayoutError, match=r"layouts/policy\.yaml:2: readme line 1"):
        compile_layout(spec)


# --- the layout's types validate themselves ----------------------------------------------------


def rule(**kw: object) -> Rule:
    return Rule(**{"verb": "allow", "pattern": "a/*", **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        (lambda: rule(verb="permit"), "rule verb str 'permit' is not one of"),
        (lambda: rule(pattern="a/[b"), "is never closed"),
        (lambda: rule(from_step="train"), "'allow' takes only a pattern"),
        (lambda: rule(verb="match"), "from nothing may hold letters"),
        (lambda: rule(verb="match", from_step="x y"), "from 'x y' may hold"),
        (lambda: rule(verb="match", from_step="t", of="links"), "'of' must be 'products' or"),
        (lambda: rule(verb="match", from_step="t", in_prefix="a\x00"), "'in' prefix must be"),
        (lambda: StepDef("bad name", ("a",), 1, (), ()), "step name 'bad name' may hold"),
        (lambda: StepDef("s", (), 1, (), ()), "step 's' has no functionaries"),
        (lambda: StepDef("s", ("a",), 0, (), ()), "threshold must be an integer >= 1, got int 0"),
        (lambda: StepDef("s", ("a",), True, (), ()), "threshold must be an integer >= 1"),
        (lambda: StepDef("s", ("a", "a"), 2, (), ()), "threshold 2 exceeds its 1 functionaries"),
        (lambda: StepDef("s", ("a",), 1, ("allow *",), ()), "materials of step 's' must be a"),
        (lambda: StepDef("s", ("a",), 1, (), (), ("",)), "command of step 's' must be a tuple"),
        (lambda: InspectionDef("i", (), (), ()), "run of inspection 'i' must name a command"),
        (lambda: ModelDecl("train", "../m/*"), "model products:"),
        (lambda: ModelDecl("", "m/*"), "model step '' may hold"),
        (lambda: Threshold("s", "m.json", "acc", "=>", 1), "operator '=>' is not one of"),
        (lambda: Threshold("s", "m.json", "acc", ">=", True), "threshold True is not a number"),
        (lambda: Threshold("s", "m.json", "acc", ">=", float("nan")), "is not finite"),
        (lambda: Threshold("s", "m/*.json", "acc", ">=", 1), "must name a file, not a pattern"),
        (lambda: Threshold("s", "./m.json", "acc", ">=", 1), "not a normalised relative path"),
        (lambda: Threshold("s", "../m.json", "acc", ">=", 1), "escapes the base directory"),
        (lambda: Threshold("s", "m.json", "a..b", ">=", 1), "metric 'a..b' must be keys of"),
    ],
)
def test_layout_types_refuse_invalid_values_when_built(build, problem: str) -> None:
    with pytest.raises(LayoutError) as err:
        build()
    assert problem in str(err.value)


def test_a_whole_layout_built_through_the_api_compiles(owner: Path) -> None:
    from provenance.signing.keys import load_public_key

    train = StepDef(
        "train",
        ("trainer",),
        1,
        (),
        (Rule("create", "models/*"),),
        run_id_optional=True,
    )
    spec = LayoutSpec(
        "api",
        dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc),
        {"trainer": load_public_key("keys/trainer.pub")},
        [train],
        model=ModelDecl("train", "models/*"),
    )
    policy = LayoutPolicy.from_layout(compile_layout(spec), "api")
    assert policy.model == ModelDecl("train", "models/*") and policy.run_id_optional == {"train"}
