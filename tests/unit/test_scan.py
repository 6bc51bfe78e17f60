"""`provenance scan`: code-carrying model files are refused without ever being loaded; data
formats are checked for well-formedness; the verdict is a signed test-result attestation."""

from __future__ import annotations

import hashlib
import io
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


# --- Paths: any path, shown as given; --base decides what is recorded -------------------------


def test_absolute_path_outside_the_current_directory_is_shown_as_given(
    tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere" / "models"
    elsewhere.mkdir(parents=True)
    _safetensors(elsewhere / "w.safetensors")
    (elsewhere / "evil.pkl").write_bytes(pickle.dumps({"a": 1}))
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    r = cli("scan", str(elsewhere), "--json")
    assert r.code == 1
    doc = json.loads(r.out)
    assert doc["failures"][0].startswith(f"{elsewhere}/evil.pkl: opened by pickle.load")
    assert {f["file"] for f in doc["files"]} == {
        f"{elsewhere}/w.safetensors",
        f"{elsewhere}/evil.pkl",
    }
    # --base only changes what the signed result records.
    r = cli(
        "scan", str(elsewhere / "w.safetensors"), "--base", str(tmp_path / "elsewhere"), "--json"
    )
    [f] = json.loads(r.out)["files"]
    assert (f["file"], f["path"]) == (str(elsewhere / "w.safetensors"), "models/w.safetensors")
    # Signing a file outside --base would record a path that escapes it: a usage error.
    assert cli("keygen", "scanner", "--dir", "keys").code == 0
    r = cli("scan", str(elsewhere / "w.safetensors"), "--key", "keys/scanner", "-o", "s.jsonl")
    assert r.code == 2 and "is outside --base" in r.err
    assert not Path("s.jsonl").exists()


# --- Containers: opened with bounds; what cannot be opened cleanly is refused (exit 1) ---------


def _allowed_scan(cli, path: Path) -> tuple[int, str]:
    r = cli("scan", str(path), "--allow", str(path))
    return r.code, r.out + r.err


def test_decompression_bomb_is_refused(tmp_path: Path, cli) -> None:
    import gzip

    path = tmp_path / "frame.pkl.gz"
    path.write_bytes(gzip.compress(b"\0" * (64 * 1024 * 1024), 9))
    code, out = _allowed_scan(cli, path)
    assert code == 1 and "a decompression bomb?" in out


def test_containers_nested_past_the_depth_limit_are_refused(tmp_path: Path, cli) -> None:
    import gzip

    data = pickle.dumps({"a": 1})
    for _ in range(6):
        data = gzip.compress(data)
    path = tmp_path / "deep.pkl.gz"
    path.write_bytes(data)
    code, out = _allowed_scan(cli, path)
    assert code == 1 and "containers nested deeper than 4" in out


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("cut.pt", b"PK\x03\x04" + b"\0" * 40, "not a zip archive that opens cleanly"),
        ("cut.pkl.gz", b"\x1f\x8b\x08\x00" + b"\0" * 10, "gzip stream"),
        ("cut.pkl.bz2", b"BZh9" + b"\x31\x41\x59\x26" + b"\0" * 8, "bzip2 stream"),
        ("cut.pkl.xz", b"\xfd7zXZ\x00" + b"\0" * 12, "xz stream"),
        ("lz4.joblib", b"\x04\x22\x4d\x18rest", "cannot open (lz4/zstd/ZF)"),
    ],
)
def test_archive_that_cannot_be_opened_cleanly_is_exit_1_not_4(
    tmp_path: Path, cli, name: str, content: bytes, why: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    for args in ([str(path)], [str(path), "--allow", str(path)]):
        r = cli("scan", *args)
        assert r.code == 1, r.out + r.err
        assert f"- {path}: " in r.out and why in r.out


def test_zip_with_duplicate_or_prefixed_members_is_refused(tmp_path: Path, cli) -> None:
    ok = pickle.dumps({"a": 1})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", ok)
    (tmp_path / "prefixed.pt").write_bytes(b"junk" * 4 + buf.getvalue())
    code, out = _allowed_scan(cli, tmp_path / "prefixed.pt")
    assert code == 1 and "16 bytes of other data before the zip" in out


# --- Formats: parsed, not searched ------------------------------------------------------------


def test_keras_config_over_the_node_limit_is_refused_not_truncated(
    tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provenance.scanning import _keras

    monkeypatch.setattr(_keras, "MAX_NODES", 1000)
    config = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Dense", "config": {"name": "d", "pad": list(range(2000))}}]}}  # fmt: skip
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as zf:
        zf.writestr("config.json", json.dumps(config))
    r = cli("scan", str(tmp_path / "m.keras"))
    assert r.code == 1 and "more than 1000 JSON nodes: refused, not walked in part" in r.out


@pytest.mark.parametrize(
    ("config", "why"),
    [
        ({"module": "os", "class_name": "system", "config": {}}, "from module 'os'"),
        ({"module": "keras.layers", "class_name": "Evil"}, "'Evil' at $ is not a built-in"),
        (
            {"class_name": "function", "config": "system", "module": "keras.src.utils"},
            "function 'system' at $ is not a built-in one",
        ),
        ({"class_name": "Dense", "registered_name": "my>Dense"}, "custom object 'my>Dense'"),
        ({"class_name": "Dense", "config": {"activation": "os.system"}}, "activation 'os.system'"),
        ({"class_name": "__lambda__", "config": {"code": "4wEA"}}, "Lambda layer '__lambda__'"),
    ],
)
def test_keras_objects_outside_the_allow_list_are_refused(
    tmp_path: Path, cli, config: dict, why: str
) -> None:
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as zf:
        zf.writestr("config.json", json.dumps({"class_name": "Sequential", "config": config}))
    r = cli("scan", str(tmp_path / "m.keras"))
    assert r.code == 1 and why.replace("at $", "at $.config") in r.out, r.out


def _gguf_with_template(template: str) -> bytes:
    def s(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    kv = s("tokenizer.chat_template") + struct.pack("<I", 8) + s(template)
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + kv


@pytest.mark.parametrize(
    "template",
    [
        "{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] | trim }}{% endfor %}",
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}",
        "{% for m in messages[1:] %}{% if loop.last %}{{ m['content'] ~ eos_token }}{% endif %}"
        "{% endfor %}{% set x = messages | length %}{{ x is divisibleby 2 }}",
    ],
)
def test_plain_chat_templates_pass(tmp_path: Path, cli, template: str) -> None:
    (tmp_path / "m.gguf").write_bytes(_gguf_with_template(template))
    r = cli("scan", str(tmp_path / "m.gguf"))
    assert r.code == 0, r.out


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{{ message.content }}", "uses attribute access .content"),
        ("{{ x[k] }}", "uses a subscript outside the chat-template keys"),
        ("{{ x['_private'] }}", "uses a subscript outside the chat-template keys"),
        # Red-team: a string key Jinja resolves as an attribute when the item is missing.
        ("{{ ([1]|unique)['gi_frame'] }}", "uses a subscript outside the chat-template keys"),
        ("{% set raise_exception = 1 %}", "assigns to 'raise_exception'"),
        ("{% for loop in x %}{% endfor %}", "assigns to 'loop'"),
        ("{{ x|join(attribute='gi_frame') }}", "attribute="),
        ("{{ x|sort(false, false, 'gi_frame') }}", "attribute argument"),
        ("{{ x|unique(false, 'gi_frame') }}", "attribute argument"),
        ("{{ x | attr('y') }}", "uses the filter 'attr'"),
        ("{{ lipsum() }}", "calls something other than raise_exception"),
        ("{% include 'x' %}", "uses Include"),
        ("{% macro m() %}{% endmacro %}", "uses Macro"),
        ("{{ '__class__' }}", "has the string '__class__'"),
        ("{{ _x }}", "uses the name '_x'"),
        ("{% for", "is not a valid Jinja2 template"),
    ],
)
def test_chat_templates_outside_the_grammar_are_refused(
    tmp_path: Path, cli, template: str, why: str
) -> None:
    (tmp_path / "m.gguf").write_bytes(_gguf_with_template(template))
    r = cli("scan", str(tmp_path / "m.gguf"))
    assert r.code == 1 and why in r.out, r.out


def test_onnx_custom_domain_or_external_data_is_refused(tmp_path: Path, cli) -> None:
    _onnx(tmp_path / "custom.onnx", domain="my.ops")
    tensor = b"\x08\x01" + b"\x70\x01"  # dims 1, data_location EXTERNAL (field 14 = 1)
    graph = _pb(1, _pb(4, b"Relu")) + _pb(5, tensor)
    (tmp_path / "external.onnx").write_bytes(b"\x08\x08" + _pb(7, graph))
    r = cli("scan", str(tmp_path))
    assert r.code == 1
    assert "custom.onnx: custom operator domain(s) 'my.ops' need a custom-op library" in r.out
    assert "external.onnx: a tensor keeps its data in an external file" in r.out


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("p.yaml", b"a: !!python/name:os.system\n", "tag tag:yaml.org,2002:python/name:os.system"),
        ("c.yaml", b"a: !custom 1\n", "tag !custom"),
        ("v.txt", b"hello\x00world", "control character 0x00"),
        ("w", b"no suffix", "not a format on the allow-list"),
        ("config.json", b'{"auto_map": {"AutoModel": "evil.Model"}}', "auto_map names model code"),
        ("tokenizer.model", b"\n\x03abc", "not a format on the allow-list"),
        ("w.gz", b"\x1f\x8b", "not a format on the allow-list (would be opened by a .gz archive"),
    ],
)
def test_text_formats_and_unknown_names_are_refused(
    tmp_path: Path, cli, name: str, content: bytes, why: str
) -> None:
    (tmp_path / name).write_bytes(content)
    r = cli("scan", str(tmp_path / name))
    assert r.code == 1 and why in r.out, r.out


def test_npy_whose_data_disagrees_with_its_header_is_refused(tmp_path: Path, cli) -> None:
    buf = io.BytesIO()
    np.save(buf, np.arange(4.0))
    (tmp_path / "short.npy").write_bytes(buf.getvalue()[:-8])
    r = cli("scan", str(tmp_path / "short.npy"))
    assert r.code == 1 and "data is 152 bytes, the header says 160" in r.out


def test_mutated_corpus_files_never_crash_the_scanner(tmp_path: Path) -> None:
    """Every corpus file, damaged at random (fixed seed), under the names loaders route by:
    a report or an input error, never another exception (exit 4 is for infrastructure only)."""
    import random

    from provenance.errors import ProvenanceError
    from provenance.scanning import scan_paths

    corpus = sorted((Path(__file__).parents[1] / "scan_corpus").glob("*/*"))
    names = ["m.safetensors", "m.onnx", "m.gguf", "m.npy", "m.npz", "m.pt", "m.keras", "m.h5",
             "m.pkl.gz", "m.pkl.zip", "m.pkl.tar", "m.joblib", "c.json", "c.yaml", "t.jinja"]  # fmt: skip
    rng = random.Random(20261207)
    for _ in range(300):
        data = bytearray(rng.choice(corpus).read_bytes())
        for _ in range(rng.randint(1, 6)):
            i = rng.randrange(max(len(data), 1))
            if rng.random() < 0.6:
                data[i : i + 1] = bytes([rng.randrange(256)])
            else:
                del data[i : i + rng.randint(1, 64)]
        path = tmp_path / rng.choice(names)
        path.write_bytes(bytes(data))
        try:
            report = scan_paths([str(path)], base=str(tmp_path), allow=[str(path)])
        except ProvenanceError:
            continue
        assert len(report.files) == 1


# --- red-team findings on containers and Keras configs ----------------------------------------


def _zip(path: Path, members: list[tuple[str, bytes]]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


def test_a_zip_directory_entry_holding_a_pickle_is_refused_even_when_allowed(
    tmp_path: Path, cli
) -> None:
    """pandas.read_pickle opens the only member of a .zip whatever its name: `x/` included."""
    payload = pickle.dumps({"a": 1})
    path = _zip(tmp_path / "model.pkl.zip", [("x/", payload)])
    r = cli("scan", str(path), "--allow", str(path))
    assert r.code == 1 and "directory entry 'x/' holds data" in r.out, r.out


@pytest.mark.parametrize("name", ["model.pkl.zip", "model.keras", "model.pt"])
def test_a_zip_member_with_an_empty_name_is_a_refusal_not_a_crash(
    tmp_path: Path, cli, name: str
) -> None:
    path = _zip(tmp_path / name, [("", b"data")])
    r = cli("scan", str(path))
    assert r.code == 1 and "empty name" in r.out and "Traceback" not in r.err, r.out + r.err


@pytest.mark.parametrize(
    "config",
    [
        {"class_name": ["Dense"], "config": {}},
        {"class_name": {"a": 1}, "config": {}},
        {"class_name": "function", "config": {"name": "relu"}},
    ],
)
def test_a_keras_config_with_unhashable_names_is_a_refusal_not_a_crash(
    tmp_path: Path, cli, config: dict
) -> None:
    import json as _json

    path = _zip(
        tmp_path / "model.keras",
        [("metadata.json", b"{}"), ("config.json", _json.dumps(config).encode())],
    )
    r = cli("scan", str(path))
    assert r.code == 1 and "Traceback" not in r.err, r.out + r.err


@pytest.mark.parametrize(
    "doc",
    [
        {"auto_map": {"AutoModel": "modeling.M"}},
        {"text_config": {"auto_map": {"AutoModel": "modeling.M"}}},
        {"custom_pipelines": {"x": {"impl": "pipe.P"}}},
        {"configs": [{"custom_pipelines": {}}]},
    ],
)
def test_configs_naming_remote_code_are_refused_wherever_they_nest(
    tmp_path: Path, cli, doc: dict
) -> None:
    import json as _json

    path = tmp_path / "config.json"
    path.write_text(_json.dumps(doc))
    r = cli("scan", str(path))
    assert r.code == 1 and "trust_remote_code=True would run" in r.out, r.out
