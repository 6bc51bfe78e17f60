"""The scan against a corpus of real attacks (tests/scan_corpus, SOURCES.md) and honest files.

Every malicious file is first proven live: its real loader (pickle, joblib, pandas, numpy with
allow_pickle, torch.load, Keras with safe_mode=False, Jinja2 as llama-cpp-python rendered GGUF
templates, yaml.unsafe_load) runs it in a throwaway subprocess and the payload creates a marker
file. Then `provenance scan` refuses it (exit 1, naming the file), with or without --allow, and
without running it; `promote` refuses a representative set (the version is not promoted, the
VSA says FAILED). Honest files in every supported format pass; the allowed ones only with
--allow. Regenerate with tests/scan_corpus/make_corpus.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import snapshot

CORPUS = Path(__file__).resolve().parents[1] / "scan_corpus"
MANIFEST: dict[str, dict[str, str]] = json.loads((CORPUS / "MANIFEST.json").read_text())
MALICIOUS = sorted(k for k in MANIFEST if k.startswith("malicious/"))
HONEST = sorted(k for k in MANIFEST if k.startswith("honest/"))
ALLOWED = sorted(k for k in MANIFEST if k.startswith("allowed/"))
_MODULES = {
    "joblib": "joblib",
    "pandas": "pandas",
    "torch": "torch",
    "keras": "keras",
    "jinja2": "gguf",
    "numpy": "numpy",
    "yaml": "yaml",
}


def _needs(loader: str) -> None:
    """The loader's package is a test-heavy dependency: its absence is a setup error."""
    import importlib.util

    for prefix, module in _MODULES.items():
        if loader.startswith(prefix):
            assert importlib.util.find_spec(module), f"install the test-heavy extra ({module})"


def test_corpus_is_complete_and_every_technique_has_a_publication() -> None:
    files = sorted(
        f"{p.parent.name}/{p.name}" for p in CORPUS.glob("*/*") if p.parent.name != "__pycache__"
    )
    assert files == sorted(MANIFEST), "MANIFEST.json and the corpus folders disagree"
    assert len(MANIFEST) >= 60 and len(MALICIOUS) >= 40
    sources = (CORPUS / "SOURCES.md").read_text()
    for name in MALICIOUS:
        assert MANIFEST[name]["source"] and f"`{name.split('/')[1]}`" in sources, name


@pytest.mark.parametrize("name", MALICIOUS)
def test_malicious_file_is_live_with_its_real_loader(name: str, tmp_path: Path) -> None:
    loader = MANIFEST[name]["loader"]
    _needs(loader)
    marker = tmp_path / "MARKER"
    env = dict(os.environ, SCAN_MARKER=str(marker), KERAS_BACKEND="torch")
    subprocess.run(
        [sys.executable, str(CORPUS / "load.py"), loader, str(CORPUS / name)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=600,
        check=True,
    )
    assert marker.exists(), f"{name}: the payload did not run under {loader}"


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """The corpus in a folder outside the current directory (scan PATH with absolute paths)."""
    dest = tmp_path / "corpus"
    for kind in ("malicious", "honest", "allowed"):
        shutil.copytree(CORPUS / kind, dest / kind)
    return dest


def _scan_json(cli, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    r = cli("scan", *args, "--json")
    return r.code, json.loads(r.out)


def test_every_malicious_file_is_refused_with_and_without_allow(
    corpus_copy: Path, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCAN_MARKER", str(tmp_path / "MARKER"))
    before = snapshot(corpus_copy)
    folder = str(corpus_copy / "malicious")
    code, doc = _scan_json(cli, folder)
    assert code == 1
    assert {f["file"] for f in doc["files"] if not f["ok"]} == {
        f"{folder}/{n.split('/')[1]}" for n in MALICIOUS
    }
    allow = [a for n in MALICIOUS for a in ("--allow", f"{folder}/{n.split('/')[1]}")]
    code, doc = _scan_json(cli, folder, *allow)
    assert code == 1
    passed = [f["file"] for f in doc["files"] if f["ok"]]
    assert passed == [], f"allowed but malicious files passed: {passed}"
    assert not (tmp_path / "MARKER").exists()
    assert snapshot(corpus_copy) == before


@pytest.mark.parametrize("name", MALICIOUS)
def test_each_malicious_file_alone_is_refused_naming_it(name: str, cli) -> None:
    path = str(CORPUS / name)
    r = cli("scan", path)
    assert r.code == 1, r.out
    assert "scan FAILED: 1 of 1 file(s)" in r.out
    assert f"- {path}: " in r.out


def test_honest_files_in_every_supported_format_pass(corpus_copy: Path, cli) -> None:
    code, doc = _scan_json(cli, str(corpus_copy / "honest"))
    assert code == 0, doc["failures"]
    formats = {f["format"] for f in doc["files"]}
    assert formats >= {
        "safetensors", "onnx", "gguf", "npy", "npz", "keras", "hdf5", "json", "yaml", "text"
    }  # fmt: skip


# joblib files with inline arrays: honest, yet refused even when allowed (a walk cannot decide
# what joblib's own framing of the raw array bytes runs; see test_scan_pickle.py).
JOBLIB_INLINE = ["allowed/logistic.joblib", "allowed/scaler.joblib"]


def test_allowed_pickles_pass_only_when_allowed(corpus_copy: Path, cli) -> None:
    folder = corpus_copy / "allowed"
    code, doc = _scan_json(cli, str(folder))
    assert code == 1 and not any(f["ok"] for f in doc["files"])
    allow = [a for n in ALLOWED for a in ("--allow", str(corpus_copy / n))]
    code, doc = _scan_json(cli, str(folder), *allow)
    assert code == 1
    refused = {f["path"] for f in doc["files"] if not f["ok"]}
    assert refused == {str(corpus_copy / n) for n in JOBLIB_INLINE}, doc["failures"]


def test_a_real_torch_state_dict_passes_only_with_allow(tmp_path: Path, cli) -> None:
    import torch

    path = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(4, 2).state_dict(), path)
    r = cli("scan", str(path))
    assert r.code == 1 and "opened by torch.load, which can run code" in r.out
    assert cli("scan", str(path), "--allow", str(path)).code == 0


# --- promote: the gate's own scan refuses every malicious file of the corpus ---------------

from tests.integration.test_gate import (  # noqa: E402
    alias_version,
    decision,
    gate_keys,  # noqa: F401 - fixture
    model,  # noqa: F401 - fixture
    promote,
    register,
    server,  # noqa: F401 - fixture
    verify_ok,
)


@pytest.mark.mlflow
def test_promote_refuses_a_model_holding_every_corpus_attack(
    project: Path,
    cli,
    server,  # noqa: F811
    model,  # noqa: F811
    gate_keys,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from provenance.attest import VerificationSummary, read_statement
    from provenance.signing import load_public_key

    monkeypatch.setenv("SCAN_MARKER", str(project / "MARKER"))
    (project / "corpus").mkdir()
    # Every malicious file of the corpus in one version: the gate names each one it refuses.
    for name in [*MALICIOUS, "honest/model.safetensors", "honest/config.json"]:
        shutil.copy(CORPUS / name, project / "corpus" / name.split("/")[1])
    Path("write_model.py").write_text("import shutil\nshutil.copytree('corpus', 'models')\n")
    Path("layouts/corpus.yaml").write_text(
        "expires: 30d\nfunctionaries:\n  trainer: ../keys/trainer.pub\nsteps:\n"
        "  - name: train\n    functionaries: [trainer]\n"
        '    materials:\n      - allow: write_model.py\n      - allow: "corpus/*"\n'
        '    products:\n      - create: "models/*"\n'
        'model:\n  step: train\n  products: "models/*"\n'
    )
    sign = cli("layout", "sign", "layouts/corpus.yaml", "--key", "keys/owner", "-o", "root.layout")
    assert sign.code == 0, sign.err
    r = cli("run", "train", "-m", "write_model.py", "-m", "corpus/*", "-p", "models/*",
            "--key", "keys/trainer", "--", sys.executable, "write_model.py")  # fmt: skip
    assert r.code == 0, r.err
    assert verify_ok(cli)
    version = register(cli, server, model)
    r = promote(cli, server, model, version, gate_keys, "--vsa-output", "vsa.intoto.jsonl")
    assert r.code == 1, r.out + r.err
    for name in MALICIOUS:
        assert f"scan: {name.split('/')[1]}: " in r.out, (name, r.out)
    assert "scan: model.safetensors: " not in r.out and "scan: config.json: " not in r.out
    assert alias_version(server, model) is None
    assert decision(server, model, version, gate_keys).result == "FAILED"
    gate_pub = load_public_key(str(gate_keys / "gate.pub"))
    vsa = read_statement(Path("vsa.intoto.jsonl"), [gate_pub], VerificationSummary)
    assert vsa.statement.predicate.verification_result == "FAILED"
    assert "ML_MODEL_SCANNED" not in vsa.statement.predicate.verified_levels
    assert not (project / "MARKER").exists()
