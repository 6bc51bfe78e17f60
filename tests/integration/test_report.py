"""`provenance report`: the verified chain as one self-contained HTML page or Markdown summary."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from provenance.report import ChainView, Flow, Row, StepView, render_html, render_markdown
from provenance.report._chain import INPUTS, OUTPUTS, Signer
from tests.conftest import run_pipeline, sign_layout, snapshot

HOSTILE = "data/raw/<img src=x onerror=alert(1)>&\"q'|*`[x](y)\nline2.csv"
STEPS = ("prepare", "train", "evaluate")


def report(cli, *extra: str):
    return cli("report", "--layout", "root.layout", "--layout-key", "keys/owner.pub", *extra)


@pytest.fixture
def hostile(project: Path, cli) -> Path:
    """The example pipeline with a raw input whose name holds HTML, Markdown and a newline."""
    (project / HOSTILE).write_bytes(b"1,2,3\n")
    run_pipeline(project)
    assert sign_layout(cli).code == 0
    return project


def test_html_is_self_contained_and_escapes_hostile_names(hostile: Path, cli) -> None:
    before = snapshot(hostile)
    r = report(cli, "-o", "report.html")
    assert r.code == 0, r.err
    assert "PASS" in r.err and "report written to report.html" in r.err
    page = Path("report.html").read_text()
    # self-contained: nothing to fetch, no script, the CSP forbids the network
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower() and "@import" not in page
    assert re.findall(r"url\([^)]*\)", page) == ["url(#arrow)"] * page.count("url(")
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    assert f'<meta http-equiv="Content-Security-Policy" content="{csp}">' in page
    # every step, its signer, the verdict, every phase
    for step, who in zip(STEPS, ("data-eng", "trainer", "evaluator"), strict=True):
        assert f">{step}<" in page and who in page
    assert 'id="verdict">PASS: 3 step(s) verified' in page
    for phase in ("layout-signature", "links", "consistency", "rules", "files"):
        assert f"<td>{phase}</td>" in page
    # the hostile name appears only escaped
    assert "<img" not in page and "onerror=alert(1)>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;&amp;&quot;q&#x27;|*`[x](y)\nline2.csv" in page
    assert "<svg" in page and page.count("<rect") >= 5  # 3 steps + inputs + outputs
    after = snapshot(hostile)
    assert set(after) - set(before) == {"report.html"}


def test_markdown_has_a_mermaid_diagram_and_every_step(hostile: Path, cli) -> None:
    r = report(cli, "--format", "markdown")
    assert r.code == 0, r.err
    md = r.out
    assert md.startswith("## ✅ ML supply chain: PASS")
    block = md.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert block.startswith("flowchart LR\n")
    for i, (step, who) in enumerate(zip(STEPS, ("data-eng", "trainer", "evaluator"), strict=True)):
        assert f's{i}["{step}<br/>{who}"]' in block
    # prepare -> train: the dataset data/processed (one manifest artifact), counted as a dataset
    assert 's0 -->|"1 dataset"| s1' in block and "inputs -->" in block
    for heading in ("### Steps", "### Verification phases", "### Rules", "### Attestations"):
        assert heading in md
    assert "| SLSA provenance | **not provided** |" in md
    # the hostile name: no raw HTML, no table break, no Markdown link, no line break
    assert "<img" not in md and "[x](y)" not in md
    assert (
        "&lt;img src=x onerror=alert(1)&gt;&amp;&quot;q&#x27;&#124;&#42;&#96;&#91;x&#93;(y) line2"
        in md
    )
    table_rows = [line for line in md.splitlines() if line.startswith("| **prepare**")]
    assert len(table_rows) == 1 and table_rows[0].count(" | ") == 4


def test_failed_verification_is_reported_and_exits_1(signed: Path, cli) -> None:
    Path("models/model.safetensors").write_bytes(b"swapped weights")
    r = report(cli, "-o", "report.html")
    assert r.code == 1 and "FAIL" in r.err
    page = Path("report.html").read_text()
    assert 'class="verdict bad" id="verdict">FAIL [files]' in page
    assert '<td>files</td><td><span class="FAIL">FAIL</span></td>' in page
    assert "<h2>Failures</h2>" in page and "models/model.safetensors" in page
    md = report(cli, "--format", "markdown")
    assert md.code == 1 and md.out.startswith("## ❌ ML supply chain: FAIL")


def test_attestation_status(signed: Path, cli) -> None:
    attest = cli(
        "slsa", "attest", "--subject", "models/**", "--layout", "root.layout",
        "--layout-key", "keys/owner.pub", "--key", "keys/trainer", "-o", "model.intoto.jsonl",
    )  # fmt: skip
    assert attest.code == 0, attest.err
    md = report(
        cli, "--format", "markdown", "--provenance", "model.intoto.jsonl",
        "--attestation-key", "keys/trainer.pub",
    ).out  # fmt: skip
    assert "| SLSA provenance | **VALID** | model.intoto.jsonl: signed by " in md
    assert "2 subject(s)" in md and "| VSA | **not provided** |" in md
    unchecked = report(cli, "--format", "markdown", "--provenance", "model.intoto.jsonl").out
    assert "| SLSA provenance | **NOT CHECKED** | model.intoto.jsonl: no --attestation-key" in (
        unchecked
    )
    wrong = report(
        cli, "--format", "markdown", "--provenance", "model.intoto.jsonl",
        "--attestation-key", "keys/evaluator.pub",
    ).out  # fmt: skip
    assert "| SLSA provenance | **INVALID** |" in wrong and "does not verify" in wrong


def test_output_over_an_input_is_refused(signed: Path, cli) -> None:
    before = snapshot(signed)
    r = report(cli, "-o", "root.layout")
    assert r.code == 2 and "root.layout" in r.err
    assert snapshot(signed) == before


def _view(name: str) -> ChainView:
    step = StepView(
        "train",
        allowed=[Signer("trainer", "ab" * 32)],
        signed_by=[Signer("trainer", "ab" * 32)],
        command=["python", name],
        link_file="train.abababab.link",
        materials={name: "0" * 64},
        products={"models/m": "1" * 64},
    )
    return ChainView(
        layout=name,
        layout_sha256="2" * 64,
        verdict=f"PASS: {name}",
        ok=True,
        run_id=name,
        steps=[step],
        flows=[
            Flow(INPUTS, "train", ((name, "0" * 64),)),
            Flow("train", OUTPUTS, (("models/m", "1" * 64),)),
        ],
        phases=[Row("links", "PASS", name)],
        rules=[Row(f"ALLOW {name}", "PASS", "materials", "train")],
        failures=[name],
        attestations=[Row("VSA", "not provided", name)],
        ignored=[{"file": name, "reason": name}],
        model=name,
    )


@pytest.mark.parametrize(
    "name",
    ["</style><script>alert(1)</script>", '"><svg onload=alert(1)>', "a&b\nc<d>", "]]>-->"],
)
def test_renderers_escape_every_field(name: str) -> None:
    page = render_html(_view(name))
    assert name not in page
    assert "<script" not in page and "<svg onload" not in page and "</style><script>" not in page
    md = render_markdown(_view(name))
    assert "<script" not in md and "<svg" not in md and "\nc<d>" not in md


def test_link_payload_is_never_shown_unverified(signed: Path, cli) -> None:
    # An edited link: the report must not show its (unverified) artifacts.
    path = next(Path(".provenance/links").glob("train.*.link"))
    env = json.loads(path.read_bytes())
    link = json.loads(base64.b64decode(env["payload"]))
    link["products"]["models/evil<b>.bin"] = {"sha256": "0" * 64}
    env["payload"] = base64.b64encode(json.dumps(link).encode()).decode()
    path.write_text(json.dumps(env))
    r = report(cli, "--format", "markdown")
    assert r.code == 1 and "evil" not in r.out
    assert "changed after it was signed" in r.out
