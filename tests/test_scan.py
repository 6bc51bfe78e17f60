"""`provenance scan`: code-carrying model files are refused without ever being loaded; data
formats are checked for well-formedness; the verdict is a signed test-result attestation."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from provenance.attest import check_scan_attestation, read_statements
from provenance.attest.scan import PREDICATE_TYPE as TEST_RESULT
from provenance.signing import load_public_key


class _Exploit:
    """Unpickling this runs `touch MARKER` through os.system (posix.system)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _safetensors(path: Path) -> None:
    save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3, np.int64)}, path)


def _pb(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (payloads here are < 128 bytes)."""
    return bytes([field << 3 | 2, len(payload)]) + payload


def _onnx(path: Path, domain: str = "") -> None:
    """ModelProto{ir_version 8, graph{node Relu x->y}, opset_import{domain, 17}} by hand."""
    node = (
        _pb(1, b"x") + _pb(2, b"y") + _pb(4, b"Relu") + (_pb(7, domain.encode()) if domain else b"")
    )
    graph = _pb(1, node) + _pb(2, b"g")
    opset = (_pb(1, domain.encode()) if domain else b"") + b"\x10\x11"
    path.write_bytes(b"\x08\x08" + _pb(7, graph) + _pb(8, opset))


def _gguf(path: Path) -> None:
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0) + b"\0" * 32)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "PWNED"


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    _safetensors(root / "models" / "model.safetensors")
    _onnx(root / "models" / "model.onnx")
    _gguf(root / "models" / "model.gguf")
    (root / "models" / "config.json").write_text('{"hidden": 8}')
    monkeypatch.chdir(root)
    return root


def test_clean_model_directory_passes(model: Path, cli) -> None:
    r = cli("scan", "models", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["ok"] is True
    assert {f["path"]: f["format"] for f in doc["files"]} == {
        "models/config.json": "json",
        "models/model.gguf": "gguf",
        "models/model.onnx": "onnx",
        "models/model.safetensors": "safetensors",
    }
    st = next(f for f in doc["files"] if f["format"] == "safetensors")
    assert st["sha256"] == _sha(model / "models" / "model.safetensors")


def test_malicious_pickle_is_refused_and_never_executed(model: Path, marker: Path, cli) -> None:
    evil = model / "models" / "model.pkl"
    evil.write_bytes(pickle.dumps(_Exploit(marker)))
    assert b"system" in evil.read_bytes()  # a real payload: posix.system with our command
    before = sorted(p.name for p in model.rglob("*"))
    r = cli("scan", "models")
    assert r.code == 1
    assert "- models/model.pkl: opened by pickle.load" in r.out
    assert (
        "- models/model.pkl: pickle stream at byte 28: imports posix.system, which is not" in r.out
    )
    assert "scan FAILED: 1 of 5 file(s) unsafe or malformed" in r.out
    assert not marker.exists()
    assert sorted(p.name for p in model.rglob("*")) == before  # nothing written by the scan
    # Naming it on the allow-list does not help: an import off the allow-list always fails.
    r = cli("scan", "models", "--allow", "models/model.pkl")
    assert r.code == 1 and "imports posix.system, which is not on the allow-list" in r.out
    assert not marker.exists()


def test_malicious_pickle_inside_a_pytorch_zip_is_refused(model: Path, marker: Path, cli) -> None:
    path = model / "models" / "pytorch_model.bin"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(_Exploit(marker)))
        zf.writestr("archive/version", "3\n")
    r = cli("scan", "models/pytorch_model.bin", "--json")
    assert r.code == 1
    doc = json.loads(r.out)
    [f] = doc["files"]
    assert f["format"] == "pickle"
    assert (
        "models/pytorch_model.bin: archive/data.pkl: pickle stream at byte 28: imports "
        "posix.system, which is not on the allow-list" in doc["failures"]
    )
    assert not marker.exists()


def test_harmless_pickle_fails_unless_allowed_by_name(model: Path, cli) -> None:
    (model / "models" / "scaler.joblib").write_bytes(pickle.dumps({"mean": [0.5, 1.5]}))
    r = cli("scan", "models")
    assert r.code == 1
    assert "models/scaler.joblib: opened by joblib.load, which can run code" in r.out
    assert cli("scan", "models", "--allow", "models/scaler.joblib").code == 0


def test_pickle_renamed_to_json_is_still_a_pickle(model: Path, marker: Path, cli) -> None:
    (model / "models" / "tokenizer.json").write_bytes(pickle.dumps(_Exploit(marker), protocol=4))
    r = cli("scan", "models/tokenizer.json")
    assert r.code == 1 and "not valid JSON" in r.out
    assert "json file is also a pickle stream that calls posix.system" in r.out
    assert not marker.exists()


def test_numpy_object_array_needs_allow_pickle_and_is_refused(model: Path, cli) -> None:
    np.save(model / "models" / "emb.npy", np.array([{"a": 1}, None], dtype=object))
    np.save(model / "models" / "ok.npy", np.ones(4, dtype=np.float32))
    r = cli("scan", "models/emb.npy", "models/ok.npy")
    assert r.code == 1
    assert "models/emb.npy: dtype object holds Python objects" in r.out
    assert "ok.npy" not in r.out


def test_keras_lambda_layer_is_refused(model: Path, cli) -> None:
    config = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Dense", "config": {"name": "dense"}},
        {"class_name": "Lambda", "config": {"name": "backdoor", "function": "4wEAAA..."}},
    ]}}  # fmt: skip
    with zipfile.ZipFile(model / "models" / "m.keras", "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("metadata.json", "{}")
        zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    r = cli("scan", "models/m.keras")
    assert r.code == 1
    assert "Lambda layer 'Lambda' (backdoor) at $.config.layers[1]: its code runs on load" in r.out


@pytest.mark.parametrize(
    ("name", "content", "finding"),
    [
        ("bad.safetensors", struct.pack("<Q", 10**9) + b"{}", "header length 1000000000 exceeds"),
        (
            "overflow.safetensors",
            (lambda h: struct.pack("<Q", len(h)) + h + b"\0" * 8)(
                b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'
            ),
            "data_offsets [0, 16] outside the data (8 B)",
        ),
        (
            "dup.safetensors",
            (lambda h: struct.pack("<Q", len(h)) + h)(b'{"a":{},"a":{}}'),
            "duplicate key",
        ),
        ("bad.gguf", b"GGUF" + struct.pack("<IQQ", 3, 2**40, 0), "counts do not fit"),
        ("v9.gguf", b"GGUF" + struct.pack("<IQQ", 9, 0, 0), "unknown GGUF version 9"),
        ("bad.onnx", b"\x08\x08\x3a\xff\x7f", "runs past its message"),
        ("nograph.onnx", b"\x08\x08", "0 graphs"),
        ("fake.gguf", b"not a gguf file", "missing GGUF magic"),
    ],
)
def test_malformed_data_formats_are_findings(model: Path, cli, name, content, finding) -> None:
    (model / "models" / name).write_bytes(content)
    r = cli("scan", f"models/{name}")
    assert r.code == 1, r.out
    assert f"models/{name}: " in r.out and finding in r.out


def test_unreadable_path_is_exit_3(model: Path, cli) -> None:
    r = cli("scan", "models/nope.safetensors")
    assert r.code == 3
    assert "models/nope.safetensors: no such file or directory" in r.err
    assert cli("scan", "models", "--allow", "models/other.pkl").code == 2


def test_signed_scan_attestation_covers_every_file_with_its_digest(model: Path, cli) -> None:
    assert cli("keygen", "scanner", "--dir", "keys").code == 0
    r = cli("scan", "models", "--key", "keys/scanner", "-o", "scan.intoto.jsonl")
    assert r.code == 0, r.err
    key = load_public_key("keys/scanner.pub")
    [signed] = read_statements("scan.intoto.jsonl", [key], TEST_RESULT)
    pred = signed.statement.predicate
    assert pred.result == "PASSED"
    assert "scan:models/model.safetensors" in pred.passed_tests
    files = {p: _sha(model / p) for p in ("models/model.safetensors", "models/model.onnx")}
    assert check_scan_attestation("scan.intoto.jsonl", [key], files) == []
    # A weight file swapped after the scan is not covered.
    _safetensors_other = model / "models" / "model.safetensors"
    changed = dict(files, **{"models/model.safetensors": "0" * 64})
    assert check_scan_attestation("scan.intoto.jsonl", [key], changed) == [
        f"sha256 mismatch for 'models/model.safetensors': scanned "
        f"{files['models/model.safetensors']}, actual {'0' * 64}"
    ]
    assert _safetensors_other.exists()
    # A model file the scan never saw is not covered either.
    assert check_scan_attestation(
        "scan.intoto.jsonl", [key], dict(files, **{"models/extra.bin": "1" * 64})
    ) == ["model file 'models/extra.bin' is not covered by the scan attestation"]


def test_failed_scan_is_signed_as_failed_and_refused_by_the_check(
    model: Path, marker: Path, cli
) -> None:
    assert cli("keygen", "scanner", "--dir", "keys").code == 0
    evil = model / "models" / "model.pkl"
    evil.write_bytes(pickle.dumps(_Exploit(marker)))
    r = cli("scan", "models", "--key", "keys/scanner", "-o", "scan.intoto.jsonl", "--json")
    assert r.code == 1
    assert json.loads(r.out)["attestation"] == "scan.intoto.jsonl"
    key = load_public_key("keys/scanner.pub")
    failures = check_scan_attestation("scan.intoto.jsonl", [key], {"models/model.pkl": _sha(evil)})
    [failure] = failures
    assert failure.startswith("model file 'models/model.pkl' did not pass the scan: ")
    assert failure.endswith("imports posix.system, which is not on the allow-list")
    assert not marker.exists()


def test_scan_attestation_signed_by_another_key_is_a_failure(model: Path, cli) -> None:
    for name in ("scanner", "mallory"):
        assert cli("keygen", name, "--dir", "keys").code == 0
    assert cli("scan", "models", "--key", "keys/mallory", "-o", "scan.intoto.jsonl").code == 0
    key = load_public_key("keys/scanner.pub")
    files = {"models/model.gguf": _sha(model / "models" / "model.gguf")}
    [failure] = check_scan_attestation("scan.intoto.jsonl", [key], files)
    assert "signature does not verify with the trusted key(s)" in failure


def test_key_without_output_is_a_usage_error(model: Path, cli) -> None:
    r = cli("scan", "models", "--key", "keys/x")
    assert r.code == 2 and "--key and -o/--output go together" in r.err


def test_scanner_reads_from_memory_without_unpickling(marker: Path) -> None:
    """The library entry point too: the walk on an in-memory exploit."""
    from provenance.scanning._pickle import PickleRefusal, judge_pickle

    with pytest.raises(PickleRefusal, match=r"imports posix\.system, which is not on the allow"):
        judge_pickle(pickle.dumps(_Exploit(marker)))
    assert not marker.exists()


@pytest.mark.parametrize(
    "name",
    ["m.safetensors", "m.onnx", "m.gguf", "m.npy", "m.npz", "m.pt", "m.keras", "m.h5", "m.bin"],
)
def test_random_bytes_never_crash_the_scanner(tmp_path: Path, name: str) -> None:
    """Any content under any model name gives a report (or an input error), never a crash."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from provenance.errors import ProvenanceError
    from provenance.scanning import scan_paths

    prefixes = [b"", b"PK\x03\x04", b"\x80\x04", b"\x93NUMPY\x01\x00", b"GGUF\x03\0\0\0",
                b"\x89HDF\r\n\x1a\n", b"\x08\x08\x3a", b"\x10\0\0\0\0\0\0\0{"]  # fmt: skip

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.sampled_from(prefixes), st.binary(max_size=300))
    def run(prefix: bytes, body: bytes) -> None:
        (tmp_path / name).write_bytes(prefix + body)
        try:
            report = scan_paths([str(tmp_path / name)], base=str(tmp_path))
        except ProvenanceError:
            return
        assert len(report.files) == 1

    run()
