"""The gate's commands as separate processes against a running stack, on an honest example project.

`GateProject` is the example pipeline run once (keys, links, signed layout) in its own folder;
its methods run the installed `provenance` console script there with the stack's gate identity,
as a CI job would. Used by the concurrency, fault and REST tests of the stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN, FUNCTIONARIES, REPO, run_pipeline
from tests.stack_fixture import Stack, client_env

ALIAS = "champion"


def make_project(root: Path, inspections: str = "") -> Path:
    """Copy the example project into `root`, run its pipeline and sign its layout (plus any
    `inspections:` YAML block), as the project's owner would."""
    from provenance.signing import generate

    root.mkdir(parents=True)
    shutil.copytree(REPO / "steps", root / "steps", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "layouts", root / "layouts")
    raw = root / "data" / "raw"
    raw.mkdir(parents=True)
    digits = resources.files("sklearn.datasets.data") / "digits.csv.gz"
    (raw / "digits.csv.gz").write_bytes(digits.read_bytes())
    for name in (*FUNCTIONARIES, "owner"):
        generate(name, str(root / "keys"))
    run_pipeline(root)
    layout = root / "layouts" / "train.yaml"
    if inspections:
        layout.write_text(layout.read_text() + inspections)
    sign = ["layout", "sign", str(layout), "--key", "keys/owner", "-o", "root.layout"]
    subprocess.run(
        [str(BIN / "provenance"), *sign],
        cwd=root,
        env=client_env(),
        check=True,
        capture_output=True,
    )
    return root


def tampered_copy(root: Path, name: str = "tampered") -> Path:
    """The project's model files with the last byte of the weights flipped."""
    out = root / name
    shutil.copytree(root / "models", out)
    weights = next(p for p in sorted(out.iterdir()) if p.suffix == ".safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    return out


@dataclass
class GateProject:
    """An honest example project and the stack its commands talk to."""

    root: Path
    stack: Stack

    @property
    def gate_key(self) -> str:
        return str(self.stack.doc["gate_private_key"])

    @property
    def gate_pub(self) -> str:
        return str(self.stack.doc["gate_public_key"])

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return client_env({**self.stack.env, **(extra or {})})

    def argv(self, *args: str) -> list[str]:
        return [str(BIN / "provenance"), *args]

    def start(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start `provenance ARGS` in the project as the gate's account; do not wait."""
        return subprocess.Popen(
            self.argv(*args),
            cwd=self.root,
            env=self.env(extra_env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(
        self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            cwd=self.root,
            env=self.env(extra_env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def register_args(self, model: str, path: Path | str = "models") -> list[str]:
        return [
            "register",
            model,
            str(path),
            "--links",
            ".provenance/links",
            "--evidence",
            "metrics/metrics.json",
            "--json",
        ]

    def register(self, model: str, path: Path | str = "models") -> str:
        r = self.run(*self.register_args(model, path))
        assert r.returncode == 0, r.stderr
        return str(json.loads(r.stdout)["version"])

    def promote_args(self, model: str, version: str, alias: str = ALIAS) -> list[str]:
        return [
            "promote",
            model,
            version,
            "--alias",
            alias,
            "--layout",
            "root.layout",
            "--layout-key",
            "keys/owner.pub",
            "--gate-key",
            self.gate_key,
            "--json",
        ]

    def promote(self, model: str, version: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run(*self.promote_args(model, version), **kw)

    def fetch(self, model: str, dest: Path, alias: str = ALIAS) -> subprocess.CompletedProcess[str]:
        return self.run(
            "fetch", f"models:/{model}@{alias}", str(dest), "--gate-pub-key", self.gate_pub
        )

    # --- reading the registry as the gate's account (MLflow client, in this process) ----------

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """An MLflow client with the gate's credentials (MLflow reads them from the
        environment at each request), which are removed again afterwards."""
        from mlflow import MlflowClient

        uri = self.stack.doc["tracking_uri"]
        saved = {key: os.environ.get(key) for key in self.stack.env}
        os.environ.update(self.stack.env)
        try:
            yield MlflowClient(tracking_uri=uri, registry_uri=uri)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def alias_version(self, model: str, alias: str = ALIAS) -> str | None:
        from mlflow.exceptions import MlflowException

        with self.client() as client:
            try:
                return str(client.get_model_version_by_alias(model, alias).version)
            except MlflowException:
                return None

    def tags(self, model: str, version: str) -> dict[str, str]:
        with self.client() as client:
            return dict(client.get_model_version(model, version).tags)

    def provenance_tags(self, model: str, version: str) -> dict[str, str]:
        return {k: v for k, v in self.tags(model, version).items() if k.startswith("provenance.")}

    def decision(self, model: str, version: str, alias: str = ALIAS) -> Any:
        """The gate's signed decision on the version, checked with the gate's public key."""
        from provenance.gate._decision import decision_for
        from provenance.signing import load_public_key

        key = load_public_key(self.gate_pub)
        return decision_for(self.tags(model, version), key, model, version, alias)

    def honest_digest(self) -> str:
        from provenance.gate._tree import hash_tree

        return hash_tree(str(self.root / "models"), "models").digest()


def no_crash(r: subprocess.CompletedProcess[str]) -> None:
    """Neither a traceback nor an internal error nor a server 500 reached the user."""
    for bad in ("Traceback", "internal error", "INTERNAL_ERROR", "500 Server Error"):
        assert bad not in r.stderr, r.stderr


@pytest.fixture(scope="session")
def gate_project(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> GateProject:
    """The example project, run and signed once per session, wired to the session's stack."""
    return GateProject(make_project(tmp_path_factory.mktemp("gate") / "project"), stack)
