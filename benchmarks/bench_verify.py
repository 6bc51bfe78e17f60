"""Benchmark `provenance verify` against the upstream `in-toto-verify`, process to process.

    python benchmarks/bench_verify.py                      # 10k / 100k / 1M files per step
    python benchmarks/bench_verify.py --small              # a quick run (2k / 10k)
    python benchmarks/bench_verify.py --sizes 100000 --rounds 5

For each size N: N small files (fixed seed) under a temp dir, a 3-step pipeline recorded over
them (ingest produces the N files, train and evaluate consume them, so every link carries about
N artifacts), a signed layout; then both verifiers run as whole processes on the same layout
and links, alternately, and the medians are compared. Also: start-up time of
`provenance --version` and `import provenance`, and the peak RSS (VmHWM) of verification at the
largest size. Writes benchmarks/RESULTS-verify.md (`--small`: benchmarks/.data/, not committed).
Nothing here asserts a time: the numbers are for people to read, ratios come from one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE))

from run import _signer, build_verify_project, compile_bytecode  # noqa: E402 - shared with run.py

# Runs a console script in this process and reports its peak RSS: VmHWM belongs to the address
# space made by exec, so the benchmark's own memory (ru_maxrss would carry it) does not count.
PEAK_CHILD = """
import json, os, runpy, sys
sys.argv = sys.argv[2:]
code = 0
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
with open("/proc/self/status") as f:
    kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
with open(os.environ["PEAK_OUT"], "w") as out:
    json.dump({"code": code, "peak_kb": kb}, out)
"""


def make_files(root: Path, n: int) -> Path:
    """`n` small files (64 B - 1 KiB, fixed seed) in shards of 1000."""
    rnd = random.Random(n)
    files = root / f"files-{n}"
    for i in range(n):
        d = files / f"shard{i // 1000:04d}"
        if i % 1000 == 0:
            d.mkdir(parents=True)
        (d / f"example-{i:07d}.bin").write_bytes(rnd.randbytes(rnd.randint(64, 1024)))
    return files


def commands(proj: Path) -> dict[str, list[str]]:
    """The verifier invocations compared, all on the same layout, key and links."""
    ours = [
        str(BIN / "provenance"),
        "verify",
        "--layout",
        "root.layout",
        "--layout-key",
        "keys/k.pub",
        "--links",
        "links",
        "--base",
        ".",
    ]
    return {
        "in-toto-verify": [
            str(BIN / "in-toto-verify"),
            "--layout",
            "root.layout",
            "--verification-keys",
            "keys/k.pub",
            "--link-dir",
            "links",
        ],
        # Links, rules and the model files re-hashed: a superset of what in-toto-verify checks.
        "provenance verify --artifact 'model/**'": [*ours, "--artifact", "model/**"],
        # The default: every recorded product is re-hashed on disk (in-toto has no such check).
        "provenance verify (all products re-hashed)": ours,
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(argv: Sequence[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+sys) of one run. CPU time is what to compare on a shared
    machine: wall time there mostly measures the other processes."""
    t, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    secs, cpu = time.perf_counter() - t, _children_cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return secs, cpu


def alternate(cmds: dict[str, list[str]], cwd: Path, rounds: int) -> dict[str, tuple[float, float]]:
    """One warm-up each, then the commands in turn `rounds` times; medians (wall, CPU)."""
    for argv in cmds.values():
        run_once(argv, cwd)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
    for _ in range(rounds):
        for name, argv in cmds.items():
            times[name].append(run_once(argv, cwd))
    return {
        name: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
        for name, ts in times.items()
    }


def peak_rss(argv: Sequence[str], cwd: Path) -> float:
    """Peak RSS (MiB) of one run of a console script."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "PEAK_OUT": out.name}
        subprocess.run(
            [sys.executable, "-c", PEAK_CHILD, "-", *argv],
            cwd=cwd,
            env=env,
            capture_output=True,
            check=False,
        )
        doc = json.loads(Path(out.name).read_text())
    if doc["code"] != 0:
        raise SystemExit(f"{' '.join(argv)} exited {doc['code']} while measuring memory")
    return float(doc["peak_kb"]) / 1024


def startup(rounds: int) -> dict[str, tuple[float, float]]:
    py = sys.executable
    cmds = {
        "python -c pass (interpreter start)": [py, "-c", "pass"],
        "python -c 'import provenance'": [py, "-c", "import provenance"],
        "provenance --version": [str(BIN / "provenance"), "--version"],
        "provenance --help": [str(BIN / "provenance"), "--help"],
        "in-toto-verify --version": [str(BIN / "in-toto-verify"), "--version"],
    }
    return alternate(cmds, HERE, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="2k and 10k files per step")
    parser.add_argument("--sizes", help="files per step, comma-separated (default 10k,100k,1M)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="default 3 (1 at 1M files and more)"
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    compile_bytecode()
    sizes = [
        int(s)
        for s in (args.sizes or ("2000,10000" if args.small else "10000,100000,1000000")).split(",")
    ]
    if args.output is None:
        args.output = (
            HERE / ".data" / "RESULTS-verify-small.md" if args.small else HERE / "RESULTS-verify.md"
        )
    load_before = os.getloadavg()
    rows: list[tuple[int, dict[str, tuple[float, float]]]] = []
    memory: dict[str, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    try:
        _signer(tmp / "keys")
        key = tmp / "keys" / "bench"
        for n in sizes:
            work = tmp / f"n{n}"
            work.mkdir()
            print(f"[{n:,} files per step] generating and recording ...", file=sys.stderr)
            proj = build_verify_project(make_files(work, n), key, work)
            rounds = args.rounds or (1 if n >= 1_000_000 else 3)
            print(f"[{n:,} files per step] timing, {rounds} round(s) ...", file=sys.stderr)
            rows.append((n, alternate(commands(proj), proj, rounds)))
            if n == max(sizes):
                print(f"[{n:,} files per step] peak memory ...", file=sys.stderr)
                cmds = commands(proj)
                memory = {name: peak_rss(argv, proj) for name, argv in cmds.items()}
                memory["n"] = n
            shutil.rmtree(work)
        print("start-up ...", file=sys.stderr)
        starts = startup(max(args.rounds or 10, 5))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = render(rows, memory, starts, load_before, os.getloadavg(), args.rounds)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)


def render(
    rows: list[tuple[int, dict[str, tuple[float, float]]]],
    memory: dict[str, float],
    starts: dict[str, tuple[float, float]],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    rounds: int | None,
) -> str:
    anchor = "in-toto-verify"
    names = [k for k in rows[0][1] if k != anchor] if rows else []
    first_n, first = rows[0] if rows else (1, {})
    lines = [
        "# Verification benchmark",
        "",
        f"Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}), Python {platform.python_version()}; "
        "whole processes, warm page cache, medians of alternating rounds "
        f"({rounds or '3, 1 at 1M'}). Load average before/after: "
        f"{load_before[0]:.2f} / {load_after[0]:.2f}. On a shared machine compare the CPU "
        "columns (user+sys of the process and its children): wall time there mostly measures "
        "the other processes. Reproduce: `python benchmarks/bench_verify.py`.",
        "",
        "A 3-step layout (ingest creates `data/*`; train and evaluate MATCH them), so each of the "
        "three links records about N artifacts; files are 64 B - 1 KiB.",
        "",
        "## Verification time",
        "",
        "| files per step | verifier | wall s | CPU s | speed-up (CPU) | speed-up (wall) "
        "| CPU s per 100k files |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for n, med in rows:
        (aw, ac) = med[anchor]
        for name in [anchor, *names]:
            w, c = med[name]
            lines.append(
                f"| {n:,} | {name} | {w:.3f} | {c:.3f} | {ac / c:.2f}x | {aw / w:.2f}x "
                f"| {c / n * 100_000:.3f} |"
            )
    if len(rows) > 1:
        lines += [
            "",
            "Linearity (CPU time per file relative to the smallest size; 1.00 = linear, below "
            "1.00 = the fixed start-up cost is spread over more files):",
            "",
        ]
        for name in [anchor, *names]:
            rel = ", ".join(
                f"{n:,}: {med[name][1] / n / (first[name][1] / first_n):.2f}" for n, med in rows
            )
            lines.append(f"- {name}: {rel}")
    if memory:
        lines += [
            "",
            f"## Peak memory at {int(memory['n']):,} files per step (VmHWM of the process)",
            "",
            "| verifier | peak RSS MiB |",
            "|---|---:|",
        ]
        lines += [f"| {k} | {v:.0f} |" for k, v in memory.items() if k != "n"]
    lines += [
        "",
        "## Start-up",
        "",
        "| command | wall ms | CPU ms | CPU above interpreter start ms |",
        "|---|---:|---:|---:|",
    ]
    base = starts["python -c pass (interpreter start)"][1]
    lines += [
        f"| {k} | {w * 1000:.0f} | {c * 1000:.0f} | {(c - base) * 1000:.0f} |"
        for k, (w, c) in starts.items()
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
