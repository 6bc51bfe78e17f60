"""Links written by the upstream `in-toto-run` (no pipeline run id) take part only when opted in.

A small pipeline: `fetch` and `publish` are recorded with `provenance run`, `clean` with the real
upstream `in-toto-run --use-dsse`, which writes a DSSE link with an empty environment.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from provenance.errors import LayoutError
from provenance.layout import LayoutPolicy, compile_layout, lint, load_yaml
from tests.conftest import BIN, in_toto_verify, sign_layout, snapshot, verify

LINKS = Path(".provenance/links")

LAYOUT = """\
expires: 30d
functionaries:
  data-eng: ../keys/data-eng.pub
  trainer: ../keys/trainer.pub
  evaluator: ../keys/evaluator.pub
steps:
  - name: fetch
    functionaries: [data-eng]
    products:
      - create: "data/raw/*"
  - name: clean
    functionaries: [trainer]
{run_id}    materials:
      - match: "data/raw/*"
        from: fetch
    products:
      - create: "data/clean/*"
  - name: publish
    functionaries: [evaluator]
    materials:
      - match: "data/clean/*"
        from: clean
    products:
      - create: "dist/*"
"""
OPT_IN = "    run_id: optional\n"


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def write_layout(opt_in: bool, name: str = "chain.yaml") -> str:
    path = Path("layouts") / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(LAYOUT.format(run_id=OPT_IN if opt_in else ""))
    return str(path)


def record(cli, step: str, key: str, *args: str) -> None:
    r = cli("run", step, "--key", f"keys/{key}", *args)
    assert r.code == 0, r.err


def fetch(cli) -> None:
    code = (
        "import os; os.makedirs('data/raw', exist_ok=True); open('data/raw/a.txt','w').write('a')"
    )
    record(cli, "fetch", "data-eng", "-p", "data/raw/**", "--", *python(code))


def clean_upstream(*extra: str) -> Path:
    """Record `clean` with the upstream in-toto-run (DSSE with --use-dsse, Metablock without)."""
    code = (
        "import os; os.makedirs('data/clean', exist_ok=True); "
        "open('data/clean/a.txt','w').write(open('data/raw/a.txt').read().upper())"
    )
    subprocess.run(
        [
            str(BIN / "in-toto-run"),
            "-n",
            "clean",
            "--signing-key",
            "keys/trainer",
            *extra,
            "-m",
            "data/raw",
            "-p",
            "data/clean",
            "-d",
            str(LINKS),
            "--",
            *python(code),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = LINKS.glob("clean.*.link")
    return path


def clean_ours(cli) -> None:
    code = "import os; os.makedirs('data/clean', exist_ok=True); open('data/clean/a.txt','w').write('A')"
    record(cli, "clean", "trainer", "-m", "data/raw/**", "-p", "data/clean/**", "--", *python(code))


def publish(cli) -> None:
    code = "import os; os.makedirs('dist', exist_ok=True); open('dist/out.txt','w').write('A!')"
    record(cli, "publish", "evaluator", "-m", "data/clean/**", "-p", "dist/**", "--", *python(code))


@pytest.fixture
def chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli) -> Path:
    """The three steps recorded, `clean` by the upstream in-toto-run --use-dsse."""
    root = tmp_path / "chain"
    root.mkdir()
    monkeypatch.chdir(root)
    for name in ("data-eng", "trainer", "evaluator", "owner"):
        assert cli("keygen", name, "--dir", "keys").code == 0
    fetch(cli)
    clean_upstream("--use-dsse")
    publish(cli)
    return root


def envelope_payload(path: Path) -> dict:
    return json.loads(base64.b64decode(json.loads(path.read_bytes())["payload"]))


def test_upstream_link_verifies_with_a_warning_when_its_step_opts_in(chain: Path, cli) -> None:
    (link,) = LINKS.glob("clean.*.link")
    upstream = envelope_payload(link)
    # What upstream writes: a DSSE in-toto link, sha256 digests, no environment (no run id).
    assert upstream["environment"] == {}
    assert set(upstream["products"]["data/clean/a.txt"]) == {"sha256"}
    assert sign_layout(cli, write_layout(opt_in=True)).code == 0
    before = snapshot(chain)
    r = verify(cli)
    assert r.code == 0, r.out
    assert r.out.startswith("PASS: 3 step(s) verified") and "(1 warning(s))" in r.out
    assert f"warning: step 'clean': link {link.name} has no pipeline run id" in r.out
    assert "`run_id: optional`" in r.out
    doc = json.loads(verify(cli, "--json").out)
    assert doc["verified"] is True
    (warning,) = doc["warnings"]
    assert link.name in warning and "not tied to this pipeline run" in warning
    # The run id is the one the `provenance run` steps share.
    assert doc["run_id"] == (LINKS / "RUN_ID").read_text().strip()
    assert snapshot(chain) == before
    # The layout's opt-in rides in its readme: the upstream verifier accepts the same chain.
    upstream_verify = in_toto_verify(chain)
    assert upstream_verify.returncode == 0, upstream_verify.stderr


def test_upstream_link_without_opt_in_fails_naming_the_link_and_the_fix(chain: Path, cli) -> None:
    (link,) = LINKS.glob("clean.*.link")
    assert sign_layout(cli, write_layout(opt_in=False)).code == 0
    r = verify(cli)
    assert r.code == 1
    assert r.out.startswith(
        f"FAIL [run-id]: step 'clean': link {link.name} has no pipeline run id"
    ), r.out
    assert "re-record step 'clean' with `provenance run clean" in r.out
    assert "add `run_id: optional` to step 'clean' in the layout YAML and sign it again" in r.out
    doc = json.loads(verify(cli, "--json").out)
    assert doc["verified"] is False and doc["warnings"] == []
    (failure,) = doc["failures"]
    assert failure["phase"] == "run-id" and failure["step"] == "clean"


def test_mixed_run_ids_among_opted_out_steps_still_fail(chain: Path, cli) -> None:
    assert sign_layout(cli, write_layout(opt_in=True)).code == 0
    assert cli("pipeline", "start").code == 0
    publish(cli)  # re-recorded in a new run: fetch is now from another run
    r = verify(cli)
    assert r.code == 1
    assert "FAIL [run-id]: links come from 2 different pipeline runs" in r.out
    assert "a stale link from a previous run?" in r.out


def test_opt_in_does_not_accept_a_link_of_another_run(chain: Path, cli) -> None:
    # The opt-in relaxes a missing run id only: a `clean` link from another run still fails.
    assert sign_layout(cli, write_layout(opt_in=True)).code == 0
    next(LINKS.glob("clean.*.link")).unlink()
    assert cli("pipeline", "start").code == 0
    clean_ours(cli)
    r = verify(cli)
    assert r.code == 1
    assert "links come from 2 different pipeline runs" in r.out


def test_legacy_metablock_link_is_refused_with_the_fix(chain: Path, cli) -> None:
    next(LINKS.glob("clean.*.link")).unlink()
    link = clean_upstream()  # upstream's default: the legacy Metablock format
    assert "signed" in json.loads(link.read_bytes())
    assert sign_layout(cli, write_layout(opt_in=True)).code == 0
    before = snapshot(chain)
    r = verify(cli)
    assert r.code == 3
    assert link.name in r.err and "legacy in-toto metadata (Metablock)" in r.err
    assert "re-record the step with `in-toto-run --use-dsse" in r.err
    assert "Traceback" not in r.err and r.out == ""
    assert snapshot(chain) == before


def test_malformed_signed_opt_in_fails_closed(chain: Path, cli) -> None:
    # The declaration is signed in the layout's readme; if garbled it is neither opt-in nor ignored:
    # the signed layout is refused as invalid input, naming it.
    from tests.unit.test_layout_policy import sign_with_declaration

    sign_with_declaration(write_layout(opt_in=False), "ml-provenance run-id-optional: [clean")
    before = snapshot(chain)
    r = verify(cli)
    assert r.code == 3, r.err
    assert "root.layout: the signed layout's run-id-optional declaration is malformed" in r.err
    assert "not JSON" in r.err and "Traceback" not in r.err and r.out == ""
    assert snapshot(chain) == before


def test_an_owner_readme_cannot_forge_a_declaration(chain: Path, cli) -> None:
    path = Path(write_layout(opt_in=False))
    path.write_text(path.read_text() + 'readme: "ml-provenance run-id-optional: [\\"clean\\"]"\n')
    r = sign_layout(cli, str(path))
    assert r.code == 3
    assert f"{path}:" in r.err and "reserved for the declarations ml-provenance writes" in r.err
    assert not Path("root.layout").exists()


def test_layout_key_is_strict_and_linted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("data-eng", "trainer", "evaluator"):
        assert cli("keygen", name, "--dir", "keys").code == 0
    spec = load_yaml(write_layout(opt_in=True))
    assert [s.run_id_optional for s in spec.steps] == [False, True, False]
    (finding,) = [f for f in lint(spec) if f.code == "run-id-optional"]
    assert finding.severity == "warning" and "cannot be tied to the pipeline run" in finding.message
    assert finding.line == spec.steps[1].line
    readme = compile_layout(spec).readme
    assert 'ml-provenance run-id-optional: ["clean"]' in readme.splitlines()
    steps = {"fetch", "clean", "publish"}
    assert LayoutPolicy.from_readme(readme, steps=steps).run_id_optional == {"clean"}
    strict = load_yaml(write_layout(opt_in=False, name="strict.yaml"))
    assert "run-id-optional" not in compile_layout(strict).readme
    assert not any(f.code == "run-id-optional" for f in lint(strict))
    r = cli("layout", "lint", "layouts/chain.yaml")
    assert r.code == 0 and "warning:" in r.out and "[run-id-optional]" in r.out
    bad = Path("layouts/bad.yaml")
    bad.write_text(LAYOUT.format(run_id="    run_id: sometimes\n"))
    r = cli("layout", "lint", str(bad))
    assert r.code == 3
    assert "layouts/bad.yaml:13: run_id of step 'clean' must be 'required' or 'optional'" in r.err


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('ml-provenance run-id-optional: "clean"', "not a list of step names"),
        ("ml-provenance run-id-optional: [1]", "not a list of step names"),
        ('ml-provenance run-id-optional: ["deploy"]', "unknown step 'deploy'"),
        ('ml-provenance run-id-optional: []\nml-provenance run-id-optional: ["clean"]', "2 times"),
    ],
)
def test_malformed_declarations_raise(line: str, problem: str) -> None:
    with pytest.raises(LayoutError, match=problem):
        LayoutPolicy.from_readme("readme\n" + line, steps={"clean"})
    assert LayoutPolicy.from_readme("no declaration", steps={"clean"}).run_id_optional == set()


def test_a_file_planted_where_an_upstream_link_recorded_products_fails(chain: Path, cli) -> None:
    """The upstream link names no patterns: the owner's `create: "data/clean/*"` says which
    directory holds only what the chain recorded."""
    assert sign_layout(cli, write_layout(opt_in=True)).code == 0
    Path("data/clean/planted.txt").write_text("after the run")
    before = snapshot(chain)
    r = verify(cli)
    assert r.code == 1, r.out
    assert "data/clean/planted.txt" in r.out and "clean" in r.out and "extra" in r.out
    assert snapshot(chain) == before
