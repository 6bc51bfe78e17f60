"""Benchmark the gate on the production-like stack it starts itself (PostgreSQL + S3 + MLflow
with 2 workers, basic auth and the registry plugin) in a temporary folder.

    python benchmarks/bench_stack.py           # 1 GiB re-hash, 78 promotions
    python benchmarks/bench_stack.py --small   # 128 MiB re-hash, 23 promotions

Most of the time goes to `stack up` and `down` (about a minute together on 2 idle cores).

Measures
- promotions per minute and p50/p95 latency of `provenance.gate.promote` at 1, 4 and 16
  concurrent clients (threads of this process; each client promotes its own model, so the
  figures are the server's and the gate's, not lock contention on one alias), plus one
  `provenance promote` command for the cost of starting the CLI;
- the plugin's server-side re-hash when an alias is set on a version of N bytes (streamed from
  S3, no temporary copy), as the time of that request minus the same request on a 1-byte
  version, against `hashlib.sha256` of the same bytes in this process, in the same run.

Prints a markdown table and writes benchmarks/RESULTS-stack.md (RESULTS-stack-small.md with
--small). The stack is stopped by `provenance stack down` (by PID) and the folder removed.
Nothing here asserts a time: the numbers are for people to read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
ALIAS = "champion"


def provenance(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    r = subprocess.run(
        [str(BIN / "provenance"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )
    if r.returncode != 0:
        raise SystemExit(f"provenance {' '.join(args[:2])} failed ({r.returncode}): {r.stderr}")
    return r.stdout


def clean_env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "PROVENANCE_"))
    }
    env["CI"] = "true"
    return env


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# --- promotions ------------------------------------------------------------------------------


def register_models(project: Path, count: int) -> list[tuple[str, str]]:
    """`count` models, each with the example model registered as version 1 (in parallel)."""
    from provenance.gate.mlflow import register_files

    os.chdir(project)
    stamp = int(time.time())

    def one(i: int) -> tuple[str, str]:
        reg = register_files(
            f"bench-{stamp}-{i}",
            "models",
            links_dir=".provenance/links",
            evidence=["metrics/metrics.json"],
        )
        return reg.name, reg.version

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


def promotions(
    doc: dict[str, Any], versions: list[tuple[str, str]], clients: int, per_client: int
) -> dict[str, float]:
    """`clients` threads, each promoting its own registered model `per_client` times."""
    from provenance.gate import promote
    from provenance.signing import load_public_key, load_signer

    owner = [load_public_key("keys/owner.pub")]
    gate = load_signer(doc["gate_private_key"])

    def client(i: int) -> list[float]:
        name, version = versions[i]
        took = []
        for _ in range(per_client):
            t0 = time.perf_counter()
            result = promote(
                name, version, ALIAS, layout="root.layout", layout_keys=owner, gate_signer=gate
            )
            took.append(time.perf_counter() - t0)
            if not result.promoted:
                raise SystemExit(f"benchmark promotion refused: {result.verdict}")
        return took

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [t for ts in pool.map(client, range(clients)) for t in ts]
    wall = time.perf_counter() - t0
    return {
        "clients": clients,
        "promotions": len(latencies),
        "per_minute": 60 * len(latencies) / wall,
        "p50": statistics.median(latencies),
        "p95": percentile(latencies, 0.95),
    }


def cli_promotion(doc: dict[str, Any], project: Path) -> float:
    """Wall time of one `provenance promote` command (interpreter and imports included)."""
    env = {**clean_env(), **doc["env"]}
    out = provenance(
        "register",
        "bench-cli",
        "models",
        "--links",
        ".provenance/links",
        "--evidence",
        "metrics/metrics.json",
        "--json",
        env=env,
        cwd=project,
    )
    version = json.loads(out)["version"]
    t0 = time.perf_counter()
    provenance(
        "promote",
        "bench-cli",
        version,
        "--alias",
        ALIAS,
        "--layout",
        "root.layout",
        "--layout-key",
        "keys/owner.pub",
        "--gate-key",
        doc["gate_private_key"],
        env=env,
        cwd=project,
    )
    return time.perf_counter() - t0


# --- the plugin's re-hash ----------------------------------------------------------------------


def write_data(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(size >> 20):
            f.write(block)
        f.write(os.urandom(size % (1 << 20)))


def local_sha256(path: Path) -> tuple[str, float]:
    t0 = time.perf_counter()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest(), time.perf_counter() - t0


def s3_client(doc: dict[str, Any], secrets: dict[str, str]) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=doc["s3_endpoint"],
        aws_access_key_id=secrets["s3_server_access_key"],
        aws_secret_access_key=secrets["s3_server_secret_key"],
        region_name=doc["env"]["AWS_DEFAULT_REGION"],
        config=Config(s3={"addressing_style": "path"}),
    )


def gated_version(doc: dict[str, Any], s3: Any, path: Path, sha256: str) -> tuple[str, str]:
    """A version whose only file is `path` (uploaded straight into the run's artifact folder)
    and which carries a gate-signed PASSED decision for the alias; not yet aliased."""
    from mlflow import MlflowClient

    from provenance.gate._decision import PASSED, Decision, decision_tag, now, sign_record
    from provenance.hashing import Manifest
    from provenance.signing import load_signer

    client = MlflowClient(tracking_uri=doc["tracking_uri"], registry_uri=doc["tracking_uri"])
    run = client.create_run("0")
    uri = run.info.artifact_uri  # mlflow-artifacts:/0/<run>/artifacts
    prefix = doc["artifacts_destination"].split("/", 3)[3]
    key = f"{prefix}/{uri.split(':', 1)[1].lstrip('/')}/model/{path.name}"
    s3.upload_file(str(path), doc["bucket"], key)
    name = f"rehash-{path.name}-{int(time.time() * 1000)}"
    client.create_registered_model(name)
    mv = client.create_model_version(name, f"{uri}/model", run_id=run.info.run_id)
    files = {path.name: sha256}
    decision = Decision(
        name,
        str(mv.version),
        ALIAS,
        PASSED,
        Manifest(files).digest(),
        "0" * 64,
        now(),
        files=files,
    )
    gate = load_signer(doc["gate_private_key"])
    client.set_model_version_tag(name, mv.version, decision_tag(ALIAS), sign_record(decision, gate))
    return name, str(mv.version)


def alias_request(doc: dict[str, Any], name: str, version: str) -> float:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=doc["tracking_uri"], registry_uri=doc["tracking_uri"])
    t0 = time.perf_counter()
    client.set_registered_model_alias(name, ALIAS, version)
    return time.perf_counter() - t0


def rehash(doc: dict[str, Any], secrets: dict[str, str], tmp: Path, size: int) -> dict[str, float]:
    s3 = s3_client(doc, secrets)
    big, tiny = tmp / "weights.bin", tmp / "tiny.bin"
    write_data(big, size)
    tiny.write_bytes(b"x")
    big_sha, _ = local_sha256(big)
    tiny_sha, _ = local_sha256(tiny)
    big_v = gated_version(doc, s3, big, big_sha)
    tiny_v = gated_version(doc, s3, tiny, tiny_sha)
    procs = {"store": doc["pids"]["s3"], "server": doc["pids"]["mlflow"]}
    before = {n: tree_cpu(pid) for n, pid in procs.items()}
    overhead = min(alias_request(doc, *tiny_v) for _ in range(1))
    small_cpu = {n: tree_cpu(pid) - before[n] for n, pid in procs.items()}
    before = {n: tree_cpu(pid) for n, pid in procs.items()}
    server = alias_request(doc, *big_v) - overhead
    cpu = {n: tree_cpu(pid) - before[n] - small_cpu[n] for n, pid in procs.items()}
    # The same bytes, hashed here (page cache warm, as the object store's are).
    local = min(local_sha256(big)[1] for _ in range(2))
    local_cpu = min(local_sha256_cpu(big) for _ in range(2))
    # What one plain streamed GET of the object costs (no hashing), for reference.
    key = next(
        o["Key"]
        for o in s3.list_objects_v2(Bucket=doc["bucket"], Prefix="artifacts/")["Contents"]
        if o["Key"].endswith("/model/weights.bin")
    )
    t0 = time.perf_counter()
    body = s3.get_object(Bucket=doc["bucket"], Key=key)["Body"]
    for _ in body.iter_chunks(1 << 20):
        pass
    get = time.perf_counter() - t0
    quiet = quiet_store_rehash(big, big_sha)
    big.unlink()
    mib = size / (1 << 20)
    return {
        "size": size,
        "server_s": server,
        "server_mib_s": mib / server,
        "local_s": local,
        "local_mib_s": mib / local,
        "get_s": get,
        "get_mib_s": mib / get,
        "ratio": local / server,
        "overhead_s": overhead,
        "store_cpu_s": cpu["store"],
        "server_cpu_s": cpu["server"],
        "local_cpu_s": local_cpu,
        **quiet,
    }


def quiet_store_rehash(path: Path, sha256: str) -> dict[str, float]:
    """The plugin's re-hash code (`object_sha256`, called here) against `rangestore.py`, a store
    that answers ranged GETs with sendfile(2): what the code reaches when the store is cheap."""
    import resource

    from provenance.hashing import objects
    from provenance.stack import _s3

    portfile = path.with_suffix(".port")
    store = subprocess.Popen(
        [sys.executable, str(HERE / "rangestore.py"), str(path), str(portfile)]
    )
    try:
        deadline = time.monotonic() + 30
        while not (portfile.exists() and portfile.read_text()):
            if time.monotonic() > deadline or store.poll() is not None:
                raise SystemExit("benchmarks/rangestore.py did not start")
            time.sleep(0.05)
        client = _s3.client(f"http://127.0.0.1:{portfile.read_text()}", "bench", "bench", 60)
        runs = []
        for _ in range(3):
            me = resource.getrusage(resource.RUSAGE_SELF)
            before = (tree_cpu(store.pid), me.ru_utime + me.ru_stime)
            t0 = time.perf_counter()
            if objects.object_sha256(client, "bench", path.name) != sha256:
                raise SystemExit("the quiet store's re-hash gave another digest")
            wall = time.perf_counter() - t0
            me = resource.getrusage(resource.RUSAGE_SELF)
            runs.append(
                (wall, tree_cpu(store.pid) - before[0], me.ru_utime + me.ru_stime - before[1])
            )
    finally:
        store.kill()
        store.wait()
        portfile.unlink(missing_ok=True)
    wall, store_cpu, client_cpu = statistics.median_low(runs)
    return {"quiet_s": wall, "quiet_store_cpu_s": store_cpu, "quiet_client_cpu_s": client_cpu}


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and its live descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def local_sha256_cpu(path: Path) -> float:
    """CPU seconds of this process for one `local_sha256` of `path`."""
    t0 = time.process_time()
    local_sha256(path)
    return time.process_time() - t0


def ceiling(rh: dict[str, float]) -> list[str]:
    """What the cores allow: the object store and the server share them, so no re-hash can take
    less than all the CPU time the request needs divided by the number of cores."""
    cores = os.cpu_count() or 1
    gib = rh["size"] / (1 << 30)
    floor = (rh["store_cpu_s"] + rh["server_cpu_s"]) / cores
    # Even a plugin that spent CPU on nothing but sha256 itself: the store's work plus the hash.
    best = max((rh["store_cpu_s"] + rh["local_cpu_s"]) / cores, rh["local_cpu_s"])
    return [
        "CPU used during the re-hash request (beyond the 1-byte request), from /proc: object "
        f"store {rh['store_cpu_s']:.2f} s ({rh['store_cpu_s'] / gib:.2f} s/GiB), MLflow server "
        f"with the plugin {rh['server_cpu_s']:.2f} s; the local hash {rh['local_cpu_s']:.2f} s. "
        f"On {cores} cores the request cannot take less than {floor:.2f} s (their sum / cores): "
        f"the re-hash ran at {100 * floor / rh['server_s']:.0f}% of that bound. A plugin spending "
        f"CPU on nothing but the sha256 itself would still need ({rh['store_cpu_s']:.2f} + "
        f"{rh['local_cpu_s']:.2f}) / {cores} = {best:.2f} s here, "
        f"{100 * rh['local_s'] / best:.0f}% of local speed at most, while the store shares "
        "these cores.",
        "",
        "Against the sendfile store the same code took "
        f"{rh['quiet_s']:.2f} s ({100 * rh['local_s'] / rh['quiet_s']:.0f}% of local speed), "
        f"using {rh['quiet_client_cpu_s']:.2f} s of CPU ({rh['local_cpu_s']:.2f} s of it the "
        f"hash itself, the rest receiving) while the store used {rh['quiet_store_cpu_s']:.2f} s "
        "(loopback TCP). Where the store runs elsewhere, the receiving and the hashing are this "
        "process's only work and overlap on two cores: the re-hash then takes about "
        f"max(hash, all of it / {cores}) = "
        f"{max(rh['local_cpu_s'], rh['quiet_client_cpu_s'] / cores):.2f} s.",
        "",
    ]


# --- the run -----------------------------------------------------------------------------------


def project_in(tmp: Path) -> Path:
    sys.path.insert(0, str(REPO))
    import tests.conftest  # noqa: F401 - loads the test helpers in their import order
    from tests.stack_gate import make_project

    return make_project(tmp / "project")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="128 MiB re-hash, fewer promotions")
    parser.add_argument("--out", type=Path, help="results file [benchmarks/RESULTS-stack.md]")
    args = parser.parse_args()
    size = (128 if args.small else 1024) << 20
    per_client = {1: 3, 4: 1, 16: 1} if args.small else {1: 10, 4: 5, 16: 3}
    out = args.out or HERE / ("RESULTS-stack-small.md" if args.small else "RESULTS-stack.md")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="provenance-bench-stack-"))
    root.chmod(0o711)  # PostgreSQL runs as `nobody` when this runs as root
    directory = root / "stack"
    loads = {"start": load()}
    try:
        t0 = time.monotonic()
        doc = json.loads(
            provenance("stack", "up", "--dir", str(directory), "--json", env=clean_env())
        )
        up = time.monotonic() - t0
        secrets = json.loads((directory / "secrets.json").read_text())
        os.environ.update({**doc["env"], "CI": "true"})
        project = project_in(root)
        versions = register_models(project, 16)
        rows = []
        for clients in (1, 4, 16):
            rows.append(promotions(doc, versions, clients, per_client[clients]))
            print(f"  {clients:>2} clients: {rows[-1]['per_minute']:.1f}/min", file=sys.stderr)
        cli = cli_promotion(doc, project)
        loads["promotions"] = load()
        rh = rehash(doc, secrets, root, size)
        loads["rehash"] = load()
    finally:
        os.chdir(HERE)
        if directory.exists():
            subprocess.run(
                [str(BIN / "provenance"), "stack", "down", "--dir", str(directory)],
                env=clean_env(),
                check=False,
                capture_output=True,
            )
        shutil.rmtree(root, ignore_errors=True)
    text = render(rows, cli, rh, up, loads, args.small, time.monotonic() - started)
    sys.__stdout__.write(text + "\n")  # the MLflow client may have swapped sys.stdout
    out.write_text(text)


def render(
    rows: list[dict[str, float]],
    cli: float,
    rh: dict[str, float],
    up: float,
    loads: dict[str, str],
    small: bool,
    total: float,
) -> str:
    import mlflow

    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "python benchmarks/bench_stack.py" + (" --small" if small else "")
    lines = [
        "# Benchmark results: the gate on the local stack",
        "",
        f"Measured {when} on {os.cpu_count()} cores ({platform.machine()}), Python "
        f"{platform.python_version()}, MLflow {mlflow.__version__}; server, database, object "
        f"store and clients share the machine. Load average (1/5/15 min) at start "
        f"{loads['start']}, after the promotions {loads['promotions']}, after the re-hash "
        f"{loads['rehash']}. Reproduce: `{cmd}` (took {total:.0f} s; `stack up` {up:.0f} s).",
        "",
        "## Promotions (`provenance.gate.promote`, the example model, each client its own model)",
        "",
        "| concurrent clients | promotions | promotions / min | p50 latency s | p95 latency s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clients']} | {r['promotions']} | {r['per_minute']:.1f} | {r['p50']:.2f} | "
            f"{r['p95']:.2f} |"
        )
    lines += [
        "",
        f"One `provenance promote` command (new interpreter, imports, one promotion): {cli:.2f} s.",
        "",
        f"## Server-side re-hash of a {rh['size'] / (1 << 30):.3g} GiB version (plugin, alias "
        "request)",
        "",
        "| what | seconds | MiB/s |",
        "|---|---:|---:|",
        f"| plugin re-hash, streamed from S3 (alias request minus a 1-byte one, "
        f"{rh['overhead_s']:.2f} s) | {rh['server_s']:.2f} | {rh['server_mib_s']:.0f} |",
        f"| `hashlib.sha256` of the same bytes, local file | {rh['local_s']:.2f} | "
        f"{rh['local_mib_s']:.0f} |",
        f"| one streamed S3 GET of the object, no hashing | {rh['get_s']:.2f} | "
        f"{rh['get_mib_s']:.0f} |",
        f"| the plugin's re-hash code against a sendfile store (`benchmarks/rangestore.py`), "
        f"median of 3 | {rh['quiet_s']:.2f} | {rh['size'] / (1 << 20) / rh['quiet_s']:.0f} |",
        "",
        f"Server re-hash speed is {100 * rh['ratio']:.0f}% of local `hashlib.sha256` "
        "(issue 15 target: at least 80%).",
        "",
        *ceiling(rh),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
