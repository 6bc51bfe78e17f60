"""Evaluation thresholds in the signed layout: parsed strictly, linted, signed, and checked on the
metrics file whose digest the chain recorded (never on a file swapped after `evaluate`)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from provenance.errors import LayoutError
from provenance.layout import LayoutPolicy, Threshold, compile_layout, lint, load_yaml
from provenance.links import LinkData
from provenance.verification._thresholds import MAX_METRICS_BYTES, check_thresholds
from tests.conftest import sign_layout, snapshot, verify

REPO = Path(__file__).resolve().parents[2]
HEAD = (
    "expires: 30d\nfunctionaries:\n  evaluator: {key}\nsteps:\n"
    "  - name: evaluate\n    functionaries: [evaluator]\n"
    '    products:\n      - create: "metrics/*"\n'
)


@pytest.fixture
def layout_dir(tmp_path: Path) -> Path:
    from provenance.signing import generate

    generate("evaluator", str(tmp_path))
    return tmp_path


def write_layout(d: Path, thresholds: str) -> str:
    path = d / "layout.yaml"
    path.write_text(HEAD.format(key="evaluator.pub") + thresholds)
    return str(path)


def one(metric: str = "accuracy", cond: str = '">= 0.9"', file: str = "metrics/metrics.json"):
    return (
        f"thresholds:\n  - step: evaluate\n    file: {file}\n    require:\n      {metric}: {cond}\n"
    )


# --- the YAML ----------------------------------------------------------------------------------


def test_thresholds_are_parsed_with_their_lines(layout_dir: Path) -> None:
    path = write_layout(
        layout_dir,
        "thresholds:\n  - step: evaluate\n    file: metrics/metrics.json\n    require:\n"
        '      accuracy: ">= 0.9"\n      loss: "<0.3"\n      eval.f1: "== 1"\n',
    )
    spec = load_yaml(path)
    assert [(t.metric, t.op, t.value, t.line) for t in spec.thresholds] == [
        ("accuracy", ">=", 0.9, 13),
        ("loss", "<", 0.3, 14),
        ("eval.f1", "==", 1, 15),
    ]
    assert {t.step for t in spec.thresholds} == {"evaluate"}
    assert [f for f in lint(spec) if f.code.startswith("threshold")] == []


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (one(cond='"=> 0.9"'), "must be an operator"),
        (one(cond='"~ 0.9"'), "must be an operator"),
        (one(cond="0.9"), "must be an operator"),  # a bare number says nothing about direction
        (one(cond='">= nan"'), "must be an operator"),
        (one(cond='">= inf"'), "must be an operator"),
        (one(cond='">= 1e400"'), "out of range"),
        (one(cond='">= 12345678901234567890123"'), "too large"),
        (one(cond='">= true"'), "must be an operator"),
        (one(cond="true"), "must be an operator"),
        (one(cond='">= 0x10"'), "must be an operator"),
        (one(metric="'a..b'"), "must be keys of letters"),
        (one(metric="'acc uracy'"), "must be keys of letters"),
        (one(file="metrics/*.json"), "must name a file, not a pattern"),
        (one(file="../metrics.json"), "escapes the base directory"),
        (one(file="/etc/metrics.json"), "is absolute"),
        (one().replace("step: evaluate", "step: train"), "unknown step 'train'"),
        (one().replace('    require:\n      accuracy: ">= 0.9"\n', "    require: {}\n"), "map"),
        (one() + '      accuracy: "<= 1"\n', "duplicate metric 'accuracy'"),
        (one().replace("require", "requires"), "unknown key 'requires'"),
    ],
)
def test_malformed_thresholds_are_refused_with_their_line(
    layout_dir: Path, text: str, words: str
) -> None:
    with pytest.raises(LayoutError) as err:
        load_yaml(write_layout(layout_dir, text))
    assert words in str(err.value)
    assert err.value.line is not None and err.value.line >= 9


def test_lint_refuses_a_threshold_file_the_step_does_not_produce(layout_dir: Path) -> None:
    spec = load_yaml(write_layout(layout_dir, one(file="reports/metrics.json")))
    findings = [f for f in lint(spec) if f.code == "threshold-not-produced"]
    assert len(findings) == 1 and findings[0].severity == "error"
    assert "reports/metrics.json" in findings[0].message and findings[0].line == 13


def test_thresholds_ride_in_the_signed_readme_and_read_back(layout_dir: Path) -> None:
    spec = load_yaml(write_layout(layout_dir, one(cond='"< 0.25"')))
    readme = compile_layout(spec).readme
    assert "ml-provenance thresholds: [" in readme
    assert LayoutPolicy.from_readme(readme, steps={"evaluate"}).thresholds == (
        Threshold("evaluate", "metrics/metrics.json", "accuracy", "<", 0.25),
    )
    assert LayoutPolicy.from_readme("no thresholds here", steps={"evaluate"}).thresholds == ()


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "{}",
        '[{"step": "evaluate"}]',
        '[{"step": "x", "file": "m.json", "metric": "a", "op": ">=", "value": 1}]',
        '[{"step": "evaluate", "file": "m.json", "metric": "a", "op": "=>", "value": 1}]',
        '[{"step": "evaluate", "file": "m.json", "metric": "a", "op": ">=", "value": true}]',
        '[{"step": "evaluate", "file": "m.json", "metric": "a", "op": ">=", "value": NaN}]',
    ],
)
def test_a_malformed_signed_declaration_is_an_error_not_no_thresholds(bad: str) -> None:
    with pytest.raises(LayoutError, match="thresholds declaration is malformed"):
        LayoutPolicy.from_readme("ml-provenance thresholds: " + bad, steps={"evaluate"})


@pytest.mark.parametrize(
    ("op", "value", "actual", "met"),
    [
        (">=", 0.9, 0.9, True),
        (">=", 0.9, 0.8999, False),
        (">", 0.9, 0.9, False),
        (">", 0.9, 0.91, True),
        ("<=", 0.3, 0.3, True),
        ("<=", 0.3, 0.31, False),
        ("<", 0.3, 0.3, False),
        ("<", 0.3, 0.29, True),
        ("==", 359, 359, True),
        ("==", 359, 358, False),
    ],
)
def test_each_operator(op: str, value: float, actual: float, met: bool) -> None:
    assert Threshold("evaluate", "m.json", "accuracy", op, value).holds(actual) is met


# --- the check on the recorded metrics file ----------------------------------------------------

FILE = "metrics/metrics.json"


def chain(tmp_path: Path, content: bytes, recorded: bytes | None = None):
    """A metrics file on disk and the evaluate link that recorded `recorded` (default: it)."""
    (tmp_path / "metrics").mkdir(exist_ok=True)
    (tmp_path / FILE).write_bytes(content)
    digest = hashlib.sha256(content if recorded is None else recorded).hexdigest()
    link = LinkData("evaluate", [], {}, {FILE: {"sha256": digest}}, {}, {})
    return {"evaluate": link}


def check(tmp_path: Path, content: bytes, *thresholds: tuple[str, str, float], **kw):
    ts = [Threshold("evaluate", FILE, m, op, v) for m, op, v in thresholds]
    return check_thresholds(ts, chain(tmp_path, content, **kw), str(tmp_path), "the base")


def test_met_thresholds_record_the_values_checked(tmp_path: Path) -> None:
    checked, failures = check(
        tmp_path,
        b'{"accuracy": 0.93, "loss": 0.2, "eval": {"f1": 0.88}}',
        ("accuracy", ">=", 0.9),
        ("loss", "<=", 0.3),
        ("eval.f1", ">", 0.8),
    )
    assert failures == []
    assert [(c["metric"], c["actual"], c["met"]) for c in checked] == [
        ("accuracy", 0.93, True),
        ("loss", 0.2, True),
        ("eval.f1", 0.88, True),
    ]


def test_unmet_threshold_names_metric_value_operator_and_threshold(tmp_path: Path) -> None:
    checked, failures = check(tmp_path, b'{"accuracy": 0.8, "loss": 0.5}', ("loss", "<=", 0.3))
    (f,) = failures
    assert f.phase == "thresholds" and f.step == "evaluate" and f.artifact == FILE
    assert f.message == "metric 'loss' = 0.5 in metrics/metrics.json does not meet <= 0.3"
    assert (f.expected, f.actual, f.rule) == ("<= 0.3", "0.5", "loss <= 0.3")
    assert checked[0]["met"] is False


def test_metrics_file_swapped_after_evaluate_is_refused(tmp_path: Path) -> None:
    honest = b'{"accuracy": 0.5}'
    _, failures = check(tmp_path, b'{"accuracy": 0.99}', ("accuracy", ">=", 0.9), recorded=honest)
    (f,) = failures
    assert "metrics file 'metrics/metrics.json' is not the one the chain recorded" in f.message
    assert f.expected == hashlib.sha256(honest).hexdigest()
    assert f.actual == hashlib.sha256(b'{"accuracy": 0.99}').hexdigest()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"accuracy": NaN}', "NaN is not a JSON number"),
        (b'{"accuracy": Infinity}', "Infinity is not a JSON number"),
        (b'{"accuracy": 1e400}', "out of range"),
        (b'{"accuracy": 9223372036854775808}', "too large"),
        (b'{"accuracy": "0.99"}', 'is a string ("0.99"), not a number'),
        (b'{"accuracy": true}', "is a boolean (true), not a number"),
        (b'{"accuracy": null}', "is null (null), not a number"),
        (b'{"accuracy": [0.99]}', "is an array ([0.99]), not a number"),
        (b'{"accuracy": {"v": 1}}', "is an object"),
        (b'{"accuracy": 0.9, "accuracy": 0.1}', "duplicate key 'accuracy'"),
        (b'{"loss": 0.1}', "metric 'accuracy' is missing from metrics/metrics.json"),
        (b"[0.99]", "must hold a JSON object"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"accuracy": 0.9', "is not JSON"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, "nested deeper than 32 levels"),
    ],
)
def test_metrics_that_are_not_plain_numbers_are_refused(
    tmp_path: Path, content: bytes, words: str
) -> None:
    checked, failures = check(tmp_path, content, ("accuracy", ">=", 0.9))
    assert checked == [] and len(failures) == 1
    assert words in failures[0].message, failures[0].message


def test_deeply_nested_metric_within_the_bound_is_read(tmp_path: Path) -> None:
    keys = [f"k{i}" for i in range(16)]
    doc: object = 0.95
    for k in reversed(keys):
        doc = {k: doc}
    checked, failures = check(tmp_path, json.dumps(doc).encode(), (".".join(keys), ">=", 0.9))
    assert failures == [] and checked[0]["actual"] == 0.95


def test_oversized_metrics_file_is_refused(tmp_path: Path) -> None:
    content = b'{"accuracy": 0.95, "pad": "' + b"x" * MAX_METRICS_BYTES + b'"}'
    _, failures = check(tmp_path, content, ("accuracy", ">=", 0.9))
    assert "larger than 1048576 bytes" in failures[0].message


def test_missing_file_and_unrecorded_product_fail_closed(tmp_path: Path) -> None:
    links = chain(tmp_path, b'{"accuracy": 1}')
    (tmp_path / FILE).unlink()
    t = Threshold("evaluate", FILE, "accuracy", ">=", 0.9)
    _, failures = check_thresholds([t], links, str(tmp_path), "the base directory")
    assert failures[0].message == (
        "metrics file 'metrics/metrics.json' (a product of step 'evaluate') is missing from "
        "the base directory"
    )
    other = Threshold("evaluate", "metrics/other.json", "accuracy", ">=", 0.9)
    _, failures = check_thresholds([other], links, str(tmp_path), "x")
    assert "step 'evaluate' recorded no product 'metrics/other.json'" in failures[0].message
    _, failures = check_thresholds([t], {}, str(tmp_path), "x")
    assert "recorded no product" in failures[0].message


# --- end to end on the example pipeline --------------------------------------------------------


def test_example_pipeline_meets_the_example_thresholds(signed: Path, cli) -> None:
    r = verify(cli, "--json")
    assert r.code == 0, r.out
    doc = json.loads(r.out)
    assert "thresholds" in doc["phases"]
    by_metric = {t["metric"]: t for t in doc["thresholds"]}
    actual = json.loads(Path("metrics/metrics.json").read_text())
    assert by_metric["accuracy"]["actual"] == actual["accuracy"] >= 0.85
    assert by_metric["test_examples"]["actual"] == actual["test_examples"]
    assert all(t["met"] for t in doc["thresholds"])


def test_metrics_edited_after_evaluate_fail_verify(signed: Path, cli) -> None:
    metrics = Path("metrics/metrics.json")
    recorded = hashlib.sha256(metrics.read_bytes()).hexdigest()
    metrics.write_text(json.dumps({"accuracy": 0.999, "test_examples": 359}))
    before = snapshot(signed)
    r = verify(cli)
    assert r.code == 1
    assert r.out.startswith("FAIL [thresholds]: metrics file 'metrics/metrics.json' is not the one")
    assert f"expected: {recorded}" in r.out
    assert snapshot(signed) == before


def test_unmet_threshold_fails_verify_naming_the_metric(signed: Path, cli) -> None:
    text = Path("layouts/train.yaml").read_text().replace('">= 0.85"', '">= 0.99"')
    Path("layouts/strict.yaml").write_text(text)
    assert sign_layout(cli, "layouts/strict.yaml").code == 0
    r = verify(cli, "--json")
    assert r.code == 1
    (failure,) = json.loads(r.out)["failures"]
    accuracy = json.loads(Path("metrics/metrics.json").read_text())["accuracy"]
    assert failure["message"] == (
        f"metric 'accuracy' = {accuracy} in metrics/metrics.json does not meet >= 0.99"
    )
    assert (failure["expected"], failure["actual"]) == (">= 0.99", str(accuracy))


def test_missing_metrics_file_fails_verify(signed: Path, cli, tmp_path: Path) -> None:
    shutil.move("metrics/metrics.json", tmp_path / "m.json")
    r = verify(cli)
    assert r.code == 1 and "FAIL [thresholds]" in r.out and "'metrics/metrics.json'" in r.out


@pytest.mark.parametrize(
    ("verified", "met", "level"),
    [(True, True, True), (True, False, False), (False, True, False)],
)
def test_the_vsa_level_needs_a_verified_chain_with_thresholds(
    verified: bool, met: bool, level: bool
) -> None:
    from provenance.gate._promote import _levels

    levels = _levels(verified, True, (), thresholds_met=met)
    assert ("ML_EVALUATION_THRESHOLDS_MET" in levels) is level
