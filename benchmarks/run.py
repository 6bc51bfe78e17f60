"""Benchmark the recorder and verifier against in-toto and openssl, alternately, in one run.

    make bench          # full sizes: 100k small files, 8 x 256 MiB model, one 2 GiB file
    make bench-small    # a reduced run that takes under a minute

Writes benchmarks/RESULTS.md (medians, ratios against the anchors measured in the same run);
`--small` writes benchmarks/RESULTS-small.md instead, which is not committed.
Nothing here asserts a time: the numbers are for people to read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"


def generate(small: bool) -> dict[str, Path]:
    """Create (or reuse) the data sets; deterministic content from a fixed seed."""
    n_files = 20_000 if small else 100_000
    model_file = (32 if small else 256) << 20
    single = (256 if small else 2048) << 20
    sets = {
        "small_files": DATA / f"files-{n_files}",
        "model_dir": DATA / f"model-8x{model_file >> 20}M",
        "single_file": DATA / f"single-{single >> 20}M",
    }
    rnd = random.Random(1)
    if not (sets["small_files"] / ".done").exists():
        shutil.rmtree(sets["small_files"], ignore_errors=True)
        for i in range(n_files):
            d = sets["small_files"] / f"shard{i // 1000:03d}"
            if i % 1000 == 0:
                d.mkdir(parents=True)
            (d / f"example-{i:06d}.bin").write_bytes(rnd.randbytes(rnd.randint(1024, 8192)))
        (sets["small_files"] / ".done").touch()
    block = os.urandom(1 << 20)
    if not (sets["model_dir"] / ".done").exists():
        sets["model_dir"].mkdir(parents=True, exist_ok=True)
        for i in range(8):
            with open(sets["model_dir"] / f"model-{i:05d}-of-00008.safetensors", "wb") as f:
                for _ in range(model_file >> 20):
                    f.write(block)
                f.write(i.to_bytes(4, "little"))
        (sets["model_dir"] / ".done").touch()
    if not (sets["single_file"] / ".done").exists():
        sets["single_file"].mkdir(parents=True, exist_ok=True)
        with open(sets["single_file"] / "weights.bin", "wb") as f:
            for _ in range(single >> 20):
                f.write(block)
        (sets["single_file"] / ".done").touch()
    return sets


def _signer(keydir: Path):
    from provenance.signing import generate as keygen
    from provenance.signing import load_signer

    if not (keydir / "bench").exists():
        keygen("bench", str(keydir))
    return load_signer(str(keydir / "bench"))


BIN = Path(sys.executable).parent
OURS, IN_TOTO = "provenance run", "in-toto-run"
OPENSSL, VS_OPENSSL = "openssl dgst -sha256", "provenance run / openssl (target <= 1.10)"


def _fresh(links: Path) -> None:
    """An empty links directory, so no run pays for reading an earlier run's link."""
    shutil.rmtree(links, ignore_errors=True)
    links.mkdir(parents=True)


def ours_process(base: Path, links: Path, key: Path, materials: list[str]) -> Callable[[], float]:
    """`provenance run STEP -m ... -- true`, as a user runs it: a whole process."""
    argv = [str(BIN / "provenance"), "run", "bench", "-q", "--key", str(key)]
    argv += ["--links", str(links)]
    for m in materials:
        argv += ["-m", m]
    return _process([*argv, "--", "true"], base, links)


def in_toto_process(
    base: Path, links: Path, key: Path, materials: list[str]
) -> Callable[[], float]:
    """Upstream `in-toto-run` with the same key, materials and (trivial) command."""
    argv = [str(BIN / "in-toto-run"), "-n", "bench", "--signing-key", str(key), "--use-dsse"]
    argv += ["--metadata-directory", str(links), "-m", *materials, "--", "true"]
    return _process(argv, base, links)


def openssl(path: Path) -> Callable[[], float]:
    return _process(["openssl", "dgst", "-sha256", str(path)], path.parent, None)


def _process(argv: list[str], cwd: Path, links: Path | None) -> Callable[[], float]:
    def run() -> float:
        if links is not None:
            _fresh(links)
        return run_measured(argv, cwd)[0]

    return run


def run_measured(argv: list[str], cwd: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB, the largest of the process and its children)."""
    env = {**os.environ, "PROVENANCE_RUN_ID": "bench"}
    t = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err.strip()[-2000:]}")
    return secs, usage.ru_maxrss


def link_writing(key: Path, signer, tmp: Path, rounds: int, n: int = 100_000) -> dict[str, float]:
    """Build, sign and write a link of `n` artifacts: ours vs in-toto's models."""
    from in_toto.models.link import Link
    from in_toto.models.metadata import Envelope

    from provenance.links import link_payload, write_link
    from provenance.signing import load_signer

    ours_signer = load_signer(str(key))
    artifacts = {
        f"data/shard{i // 1000:03d}/example-{i:06d}.bin": {"sha256": f"{i:064x}"} for i in range(n)
    }
    out = tmp / "link-bench"
    out.mkdir()

    def ours() -> None:
        payload = link_payload("bench", ["cmd"], artifacts, {}, {}, {"pipeline_run_id": "x"})
        write_link(payload, ours_signer, "bench", str(out))

    def in_toto() -> None:
        link = Link(
            name="bench",
            materials=artifacts,
            products={},
            byproducts={},
            command=["cmd"],
            environment={},
        )
        env = Envelope.from_signable(link)
        env.create_signature(signer)
        env.dump(str(out / "bench.intoto.link"))

    return alternate(
        {f"link of {n:,} artifacts: ours": ours, f"link of {n:,} artifacts: in-toto": in_toto},
        rounds,
    )


def timed(fn: Callable[[], object]) -> float:
    """Seconds `fn` took, or the seconds it reports itself (a process it timed, set-up excluded)."""
    t = time.perf_counter()
    own = fn()
    return own if isinstance(own, float) else time.perf_counter() - t


def alternate(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Warm up once, then run the contenders in turn, `rounds` times; return medians.

    Every other round runs them in reverse order: none always follows the same one.
    """
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(timed(contenders[name]))
    return {name: statistics.median(ts) for name, ts in times.items()}


def memory(n: int, key: Path, tmp: Path) -> dict[str, float]:
    """Peak RSS of `provenance run` recording `n` tiny files (whole process and its workers)."""
    base = DATA / f"tiny-{n}"
    if not (base / ".done").exists():
        shutil.rmtree(base, ignore_errors=True)
        for i in range(n):
            d = base / f"s{i // 1000:04d}"
            if i % 1000 == 0:
                d.mkdir(parents=True)
            (d / f"f{i:07d}").write_bytes(i.to_bytes(4, "little"))
        (base / ".done").touch()
    links = tmp / "memlinks"
    _fresh(links)
    argv = [str(BIN / "provenance"), "run", "mem", "-q", "--key", str(key), "--links", str(links)]
    # Warm-up: after the large files the million inodes are out of the cache, and a cold walk
    # measures the disk (~100 s here), not the recorder (~10 s warm).
    run_measured([*argv, "-m", ".", "--", "true"], base)
    _fresh(links)
    secs, peak_kb = run_measured([*argv, "-m", ".", "--", "true"], base)
    _fresh(links)
    (tmp / "empty").mkdir(exist_ok=True)
    _, base_kb = run_measured([*argv, "-m", ".", "--", "true"], tmp / "empty")
    return {
        "artifacts": n + 1,
        "seconds": secs,
        "peak_kb": peak_kb,
        "base_kb": base_kb,
        "bytes_per_artifact": (peak_kb - base_kb) * 1024 / (n + 1),
    }


def build_verify_project(files: Path, key: Path, tmp: Path) -> Path:
    """Record a 3-step pipeline over `files` (hard-linked into a project) and sign its layout."""
    from provenance.layout import sign_layout
    from provenance.record import StepSpec
    from provenance.record._recorder import prepare
    from provenance.signing import load_signer

    proj = tmp / "verify-project"
    shutil.rmtree(proj, ignore_errors=True)
    proj.mkdir()
    shutil.copytree(files, proj / "data", copy_function=os.link)  # hard links: no extra bytes
    (proj / "keys").mkdir()
    shutil.copy(key, proj / "keys/k")
    shutil.copy(str(key) + ".pub", proj / "keys/k.pub")
    os.chmod(proj / "keys/k", 0o600)
    links = proj / "links"
    os.environ["PROVENANCE_RUN_ID"] = "bench"
    steps = [
        ("ingest", (), ("data/**",)),
        ("train", ("data/**",), ("model/**",)),
        ("evaluate", ("data/**", "model/**"), ("metrics/**",)),
    ]
    for name, mats, prods in steps:
        rec = prepare(
            StepSpec(name, mats, prods, str(proj / "keys/k"), None, str(links), str(proj), (), True)
        )
        out = prods[0].split("/")[0]
        (proj / out).mkdir(exist_ok=True)
        (proj / out / f"{name}.out").write_bytes(name.encode())
        rec.finish([name], {})
    (proj / "layout.yaml").write_text("""expires: 30d
functionaries:
  k: keys/k.pub
steps:
  - name: ingest
    functionaries: [k]
    products:
      - create: "data/*"
  - name: train
    functionaries: [k]
    materials:
      - match: "data/*"
        from: ingest
    products:
      - create: "model/*"
  - name: evaluate
    functionaries: [k]
    materials:
      - match: "data/*"
        from: ingest
      - match: "model/*"
        from: train
    products:
      - create: "metrics/*"
""")
    sign_layout(
        str(proj / "layout.yaml"), load_signer(str(proj / "keys/k")), str(proj / "root.layout")
    )
    return proj


def verification(files: Path, key: Path, tmp: Path, rounds: int) -> dict[str, float]:
    """A 3-step layout over the small-files data set: ours vs in-toto's in_toto_verify()."""
    from in_toto import verifylib
    from in_toto.models.metadata import Metadata

    from provenance.signing import load_public_key
    from provenance.verification import verify

    proj = build_verify_project(files, key, tmp)
    links = proj / "links"
    pub = load_public_key(str(proj / "keys/k.pub"))
    layout_path, links_path = str(proj / "root.layout"), str(links)

    def ours_links_only() -> None:
        r = verify(layout_path, [pub], links_path, str(proj), check_files_on_disk=False)
        assert r.ok, r.verdict

    def ours_with_model_files() -> None:
        r = verify(layout_path, [pub], links_path, str(proj), artifacts=["model/**"])
        assert r.ok, r.verdict

    def ours_all_files() -> None:
        r = verify(layout_path, [pub], links_path, str(proj))
        assert r.ok, r.verdict

    key_dict = pub.to_dict()
    key_dict["keyid"] = pub.keyid

    def in_toto() -> None:
        verifylib.in_toto_verify(Metadata.load(layout_path), {pub.keyid: key_dict}, links_path)

    return alternate(
        {
            "verify: ours (links + rules)": ours_links_only,
            "verify: ours (+ re-hash model files)": ours_with_model_files,
            "verify: ours (+ re-hash all 100k products)": ours_all_files,
            "verify: in-toto in_toto_verify()": in_toto,
        },
        rounds,
    )


def compile_bytecode() -> None:
    """Byte-compile the package, as installing a wheel does (the upstream tools in the venv are
    compiled): with PYTHONDONTWRITEBYTECODE set, an editable checkout would otherwise be
    compiled from source on every run."""
    import provenance

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(provenance.__file__).parent)],
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="reduced sizes (under a minute)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--recording-only", action="store_true", help="skip the link-writing and verify sections"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="default: RESULTS.md (full) or RESULTS-small.md (--small, not committed)",
    )
    args = parser.parse_args()
    compile_bytecode()
    if args.output is None:
        args.output = HERE / ("RESULTS-small.md" if args.small else "RESULTS.md")
    rounds = args.rounds or (2 if args.small else 7)
    import logging

    logging.disable(logging.WARNING)  # in-toto logs a warning per step about expected commands
    sets = generate(args.small)
    tmp = Path(tempfile.mkdtemp(prefix="run-", dir=DATA))  # same filesystem: hard links work
    try:
        signer = _signer(tmp / "keys")
        key = tmp / "keys" / "bench"
        rows: list[tuple[str, str, float, float]] = []  # data, contender, seconds, ratio
        n_files = sum(1 for _ in sets["small_files"].rglob("*.bin"))
        load = [os.getloadavg()[0]]
        for label, base, materials in (
            ("small files", sets["small_files"], ["."]),
            ("model dir", sets["model_dir"], ["."]),
            ("single file", sets["single_file"], ["weights.bin"]),
        ):
            links = tmp / f"links-{base.name}"
            contenders: dict[str, Callable[[], object]] = {
                OURS: ours_process(base, links, key, materials),
                IN_TOTO: in_toto_process(base, links, key, materials),
            }
            if label == "single file":
                contenders[OPENSSL] = openssl(base / "weights.bin")
            medians = alternate(contenders, rounds)
            anchor = medians[IN_TOTO]
            for name, secs in medians.items():
                rows.append((label, name, secs, anchor / secs))
            if label == "single file":
                rows.append((label, VS_OPENSSL, medians[OURS], medians[OURS] / medians[OPENSSL]))
            load.append(os.getloadavg()[0])  # after each data set: the machine is shared
        mem = memory(60_000 if args.small else 1_000_000, key, tmp)
        load.append(os.getloadavg()[0])
        other: dict[str, float] = {}
        if not args.recording_only:
            other.update(link_writing(key, signer, tmp, rounds))
            other.update(verification(sets["small_files"], key, tmp, rounds))
            load.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_results(args.output, rows, other, mem, n_files, sets, args.small, rounds, load)
    print(args.output.read_text())


def write_results(out: Path, rows, ver, mem, n_files, sets, small, rounds, load) -> None:
    size = {k: sum(p.stat().st_size for p in v.rglob("*") if p.is_file()) for k, v in sets.items()}
    lines = [
        "# Benchmark results",
        "",
        f"Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}), Python {platform.python_version()}, "
        f"{'small' if small else 'full'} sizes, warm page cache, median of {rounds} alternating "
        "rounds. Reproduce: `make bench` (or `make bench-small`). Load average (1 min) during "
        f"the run: {', '.join(f'{x:.1f}' for x in load)}: on a shared machine only the ratios "
        "measured in the same run mean anything.",
        "",
        f"Data: {n_files:,} small files ({size['small_files'] / 1e6:.0f} MB); model dir of 8 "
        f"files ({size['model_dir'] / 2**30:.2f} GiB); one file of "
        f"{size['single_file'] / 2**30:.2f} GiB.",
        "",
        "## Recording, process to process",
        "",
        "Each contender is a whole process, started as a user starts it (`provenance run bench -m "
        "... -- true`, `in-toto-run -n bench -m ... --use-dsse -- true` with the same ed25519 "
        "key, `openssl dgst -sha256`): start-up, hashing the materials, signing and writing the "
        "link into an empty links directory. Targets: >= 5x in-toto-run on small files, >= 2x on "
        "the model dir, within 10% of openssl on the single file.",
        "",
        "| data | recorder | median s | speed-up vs in-toto-run |",
        "|---|---|---:|---:|",
    ]
    for data, name, secs, ratio in rows:
        if name == VS_OPENSSL:
            lines.append(f"| {data} | {name} | | {ratio:.2f} |")
        else:
            extra = f" ({n_files / secs:,.0f} files/s)" if data == "small files" else ""
            lines.append(f"| {data} | {name} | {secs:.3f}{extra} | {ratio:.2f}x |")
    lines += [
        "",
        "## Peak memory of recording",
        "",
        f"`provenance run` over {mem['artifacts']:,} tiny files ({mem['seconds']:.1f} s): peak RSS "
        f"{mem['peak_kb'] / 1024:.0f} MiB (largest of the process and its hashing workers; target "
        f"<= 400 MB), {mem['bytes_per_artifact']:.0f} bytes per artifact above the same command "
        f"on an empty directory ({mem['base_kb'] / 1024:.0f} MiB).",
        "",
    ]
    if ver:
        lines += [
            "## Links and verification",
            "",
            "Verification: a 3-step layout over the small-files data set (`verify()` against "
            "in-toto's `in_toto_verify()`, both in-process).",
            "",
            "| what | median s | vs in-toto |",
            "|---|---:|---:|",
        ]
        for name, secs in ver.items():
            anchor_name = next(
                k for k in ver if k.split(":")[0] == name.split(":")[0] and "in-toto" in k
            )
            lines.append(f"| {name} | {secs:.3f} | {ver[anchor_name] / secs:.2f}x |")
        lines.append("")
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
