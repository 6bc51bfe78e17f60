"""`provenance demo --stack D`: the example pipeline as separate jobs that share only the servers.

Each step runs as a process of its own in a temporary working directory of its own (removed when
the step ends), as a CI job or a pod would: its inputs come from S3 and its outputs go to S3, as
`s3://` materials and products under `demo/<pipeline run>/` of the stack's bucket, and its link
goes to the tracking server as an artifact of the step's MLflow run, tagged with the pipeline run
id (which travels as PROVENANCE_RUN_ID). The dataset `prepare` makes is recorded as a manifest
of its objects; the manifest travels through S3 beside them, and a job that reads the dataset
gets it, the run's earlier links from the server and the producer's public key, so its loader
is held to the manifest digest the producer signed. The owner's workspace then gathers the
links from the server (`--links mlflow:<run>`), verifies them (every object re-hashed from S3),
registers the model, promotes `champion` through the server's plugin as the stack's gate, and
fetches it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from provenance import _config
from provenance._demo import (
    KEYS,
    STEPS,
    DemoReport,
    attestation_stages,
    prepare_workspace,
    sign_and_verify,
)
from provenance.datasets import Dataset
from provenance.errors import ComponentError, UsageError, VerificationError

FUNCTIONARY = {"prepare": "data-eng", "train": "trainer", "evaluate": "evaluator"}
EXPERIMENT = "provenance-demo"
PREFIX_ENV = "PROVENANCE_DEMO_PREFIX"
LAYOUT = "layouts/stack.yaml"
CLIENT_ENV = ("MLFLOW_", "AWS_", "PROVENANCE_")


# Local in every job: the step's own script, and the manifests of datasets (a manifest is a
# file of the job's; the members it lists are objects).
LOCAL = ("steps/", ".provenance/")
# Steps whose loader is held to a dataset another functionary signed: that signer's public key.
TRUSTS = {"train": "data-eng", "evaluate": "data-eng"}


def remote(pattern: str, prefix: str) -> str:
    """The object-store form of a step's data pattern (its script and manifests stay local)."""
    return pattern if pattern.startswith(LOCAL) else prefix + pattern


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """Run with exactly these client settings (MLflow, S3), restored afterwards."""
    saved = _config.environment_copy(lambda k: k.startswith(CLIENT_ENV))
    for k in saved:
        _config.set_environment(k, None)
    for k, v in env.items():
        _config.set_environment(k, v)
    try:
        yield
    finally:
        for k in _config.environment_copy(lambda k: k.startswith(CLIENT_ENV)):
            _config.set_environment(k, None)
        for k, v in saved.items():
            _config.set_environment(k, v)


def _stack(stack_dir: Path) -> dict[str, Any]:
    from provenance.stack import RUNNING, document, states, status

    state = status(stack_dir)
    stopped = [n for n, s in states(state).items() if s != RUNNING]
    if stopped:
        raise ComponentError(
            stopped[0], f"not running in {stack_dir} (run `provenance stack up --dir {stack_dir}`)"
        )
    return document(state)


def _stack_layout(source: str, prefix: str) -> str:
    """The example layout with its data patterns moved to the object store.

    The thresholds are left out: the gate reads metrics evidence from local files only.
    """
    import yaml

    with open(source, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    for step in doc["steps"]:
        for kind in ("materials", "products"):
            for rule in step.get(kind, []):
                for verb, value in rule.items():
                    if verb != "from":
                        rule[verb] = remote(value, prefix)
    doc["model"]["products"] = remote(doc["model"]["products"], prefix)
    doc.pop("thresholds", None)
    header = "# The example supply chain, its data in S3 (written by `provenance demo --stack`)\n"
    return header + yaml.safe_dump(doc, sort_keys=False)


def _job_env(client: Mapping[str, str], run_id: str, prefix: str) -> dict[str, str]:
    env = _config.environment_copy(lambda k: not k.startswith(CLIENT_ENV))
    env.pop("PYTHONPATH", None)
    return {**env, **client, "PROVENANCE_RUN_ID": run_id, PREFIX_ENV: prefix, "CI": "true"}


def run_jobs(
    workdir: Path, env: Mapping[str, str], report: DemoReport, say: Callable[[str], None]
) -> None:
    """Each step in a fresh temporary directory holding only its script and its signing key.

    The directories of earlier steps are gone before it starts (recorded in `report.jobs`).
    """
    earlier: list[Path] = []
    for step in STEPS:
        jobdir = Path(tempfile.mkdtemp(prefix=f"provenance-job-{step}-"))
        try:
            (jobdir / "steps").mkdir()
            shutil.copy(workdir / "steps" / f"{step}.py", jobdir / "steps" / f"{step}.py")
            (jobdir / "keys").mkdir(mode=0o700)
            key = FUNCTIONARY[step]
            shutil.copy(workdir / "keys" / key, jobdir / "keys" / key)
            if step in TRUSTS:
                trusted = f"{TRUSTS[step]}.pub"
                shutil.copy(workdir / "keys" / trusted, jobdir / "keys" / trusted)
            say(f"job {step}: {jobdir}")
            report.jobs.append(
                {
                    "step": step,
                    "dir": str(jobdir),
                    "files": sorted(p.relative_to(jobdir).as_posix() for p in _files(jobdir)),
                    "earlier_dirs_present": [str(d) for d in earlier if d.exists()],
                }
            )
            proc = subprocess.run(
                [sys.executable, "-m", "provenance._demo_stack", step],
                cwd=jobdir,
                env=dict(env),
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            shutil.rmtree(jobdir, ignore_errors=True)
        earlier.append(jobdir)
        if proc.returncode != 0:
            raise VerificationError(f"job '{step}' failed: {proc.stderr.strip()[-800:]}")


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _fetch_objects(prefix: str, pattern: str, dest: Path) -> None:
    """Download the objects `pattern` selects into `dest`, named relative to `prefix`."""
    from provenance.hashing import objects

    s3 = objects.client()
    for uri in objects.list_objects(s3, objects.ObjectPattern.compile(pattern)):
        bucket, key = objects.parse_uri(uri)
        local = dest / uri[len(prefix) :]
        local.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(local))


def _publish(patterns: Sequence[str], prefix: str, roots: Sequence[str] = ()) -> None:
    """Upload every file under the local product patterns' directories and `roots` to `prefix`."""
    from provenance.hashing import Pattern, objects

    s3 = objects.client()
    bucket, key_prefix = objects.parse_uri(prefix.rstrip("/"))
    for root in [*(Pattern.compile(p).root for p in patterns), *roots]:
        for folder, _, names in os.walk(root):
            for name in sorted(names):
                rel = Path(folder, name).as_posix()
                s3.upload_file(rel, bucket, f"{key_prefix}/{rel}")


def _job_setting(variable: str) -> str:
    """What `_job_env` gave this job; a job started any other way is refused by name."""
    value = _config.environment(variable)
    if not value:
        raise UsageError(f"{variable} is not set: a demo job runs inside `provenance demo --stack`")
    return value


def job(step: str) -> None:
    """One pipeline step as its own job (cwd: its private directory; data in S3)."""
    import importlib.util

    import mlflow

    import provenance

    prefix = _job_setting(PREFIX_ENV)
    spec = importlib.util.spec_from_file_location(f"_demo_step_{step}", f"steps/{step}.py")
    if spec is None or spec.loader is None:
        raise VerificationError(f"steps/{step}.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    decorated = getattr(module, step)
    declared = decorated.__provenance_step__
    materials: list[str | Dataset] = [remote(p, prefix) for p in declared.materials]
    products: list[str | Dataset] = [remote(p, prefix) for p in declared.products]
    # A dataset's members are objects under the prefix; its manifest stays at its local path.
    materials += [_in_store(d, prefix) for d in declared.dataset_materials]
    products += [_in_store(d, prefix) for d in declared.dataset_products]
    if declared.dataset_materials:
        _receive_datasets(declared.dataset_materials, prefix)

    def run() -> None:
        for pattern in materials:
            if isinstance(pattern, str) and pattern.startswith("s3://"):
                _fetch_objects(prefix, pattern, Path("."))
        decorated.__wrapped__()
        _publish(list(declared.products), prefix, [d.source for d in declared.dataset_products])

    run.__qualname__ = run.__name__ = step
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=step):
        recorded = provenance.step(
            step,
            materials=materials,
            products=products,
            key=f"keys/{FUNCTIONARY[step]}",
            quiet=True,
        )(run)
        recorded()
    # The manifests travel to the later jobs (and the owner) beside the data.
    _publish([], prefix, [os.path.dirname(d.manifest_path) for d in declared.dataset_products])


def _in_store(dataset: Dataset, prefix: str) -> Dataset:
    """`dataset` with its members under `prefix`, its manifest at the same local path."""
    return Dataset(
        prefix + dataset.source,
        manifest=dataset.manifest_path,
        engine=dataset.engine,
        streamed=dataset.streamed,
    )


def _receive_datasets(datasets: Sequence[Dataset], prefix: str) -> None:
    """What a job reading datasets needs before its step starts.

    The manifests (from the store) and the run's earlier links (from the tracking server), so the
    step's loader can hold the manifest to the digest its producer signed; a streamed dataset's
    members are downloaded, then verified as the step reads them.
    """
    from provenance.gate.mlflow import MlflowRegistry

    for d in datasets:
        _fetch_objects(prefix, prefix + d.manifest_path, Path("."))
        if d.streamed:
            _fetch_objects(prefix, f"{prefix}{d.source}/**", Path("."))
    MlflowRegistry(None).gather_links(_job_setting("PROVENANCE_RUN_ID"), ".provenance/links")


def run_stack_demo(
    stack_dir: Path, workdir: Path, project: Path, fresh: bool, say: Callable[[str], None]
) -> DemoReport:
    """The demo against the stack in `stack_dir`: jobs, gathered links, verify, promote, fetch."""
    from provenance.gate.mlflow import MlflowRegistry
    from provenance.gate.mlflow.demo import Registry, promote_and_fetch
    from provenance.signing import generate

    doc = _stack(stack_dir.resolve())
    client = dict(doc["env"])
    workdir, project = workdir.resolve(), project.resolve()
    report = DemoReport(workdir)
    prepare_workspace(workdir, project, fresh)
    for name in KEYS:
        if name != "gate":  # the stack's gate key signs decisions its plugin accepts
            generate(name, str(workdir / "keys"))
    report.add("keys", "ok", f"{len(KEYS) - 1} ed25519 key pairs in keys/; the stack's gate key")
    run_id = uuid.uuid4().hex[:12]
    prefix = f"s3://{doc['bucket']}/demo/{run_id}/"
    say(f"workspace {workdir}, pipeline run {run_id}, data under {prefix}")
    cwd = os.getcwd()
    with _environment(client):
        from provenance.hashing import objects

        s3 = objects.client()
        bucket, key = objects.parse_uri(prefix + "data/raw/digits.csv.gz")
        s3.upload_file(str(workdir / "data/raw/digits.csv.gz"), bucket, key)
        run_jobs(workdir, _job_env(client, run_id, prefix), report, say)
        report.add(
            "jobs",
            "ok",
            f"{len(STEPS)} steps, each in its own temporary directory (removed after it); data "
            f"through {prefix}, links to the tracking server",
        )
        os.chdir(workdir)
        try:
            Path(LAYOUT).write_text(_stack_layout("layouts/train.yaml", prefix))
            gathered = MlflowRegistry(doc["tracking_uri"]).gather_links(run_id, "gathered-links")
            n_links = len([n for n in os.listdir(gathered) if n.endswith(".link")])
            report.add("links", "gathered", f"{n_links} links of run {run_id} from the server")
            # The dataset manifests the steps recorded (their members stay in S3).
            _fetch_objects(prefix, prefix + ".provenance/datasets/**", workdir)
            result = sign_and_verify(report, say, LAYOUT, gathered, "objects in S3")
            _fetch_objects(prefix, prefix + "models/**", workdir)
            for stage in attestation_stages():
                stage(workdir, report, say, result)
            registry = Registry(
                doc["tracking_uri"],
                links_dir=gathered,
                evidence=(),
                gate_key=doc["gate_private_key"],
                gate_pub=doc["gate_public_key"],
            )
            promote_and_fetch(registry, workdir, report, say)
        finally:
            os.chdir(cwd)
    return report


if __name__ == "__main__":
    job(sys.argv[1])
