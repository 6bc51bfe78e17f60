"""The seams for the next registry and orchestrator: Registry (chosen by the model URI's scheme),
RunContext (where the pipeline run id comes from) and LinkSink (where links go), and settings
read through `_config` so `[tool.provenance]` applies to every flag that has a variable.

The second registry here is a real one, not a mock: model versions kept as files in a directory.
The whole gate runs over it (verification of the example pipeline, scan, signed decision, VSA,
alias, then verified fetch), which is what a Hugging Face or Kubeflow registry package would do.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from provenance.gate.registry import ModelRef, ModelVersion, Registered
from tests.conftest import links_in, snapshot
from tests.unit.test_record import payload

LINKS = Path(".provenance/links")


class DirectoryRegistry:
    """A model registry in a directory: NAME/VERSION/{files/,tags.json}, NAME/aliases.json,
    runs/RUN/{links/,evidence/}."""

    def __init__(self, location: str | None = None, /) -> None:
        self.root = Path(location or "registry")

    @staticmethod
    def parse_uri(uri: str) -> ModelRef:
        from provenance.errors import UsageError

        rest = uri.removeprefix("dirreg:/")
        name, sep, alias = rest.partition("@")
        if not sep or not name or not alias or "/" in name:
            raise UsageError(f"'{uri}' is not dirreg:/NAME@ALIAS")
        return ModelRef(uri, name, alias=alias)

    def _tags(self, name: str, version: str) -> dict[str, str]:
        tags: dict[str, str] = json.loads((self.root / name / version / "tags.json").read_text())
        return tags

    def _aliases(self, name: str) -> dict[str, str]:
        path = self.root / name / "aliases.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def get_version(self, name: str, version: str) -> ModelVersion:
        from provenance.errors import InputError

        if not (self.root / name / version).is_dir():
            raise InputError(None, f"no version {version} of '{name}'")
        run = (self.root / name / version / "run").read_text()
        held = tuple(a for a, v in self._aliases(name).items() if v == version)
        return ModelVersion(name, version, run, self._tags(name, version), held)

    def get_by_alias(self, name: str, alias: str) -> ModelVersion | None:
        version = self._aliases(name).get(alias)
        return None if version is None else self.get_version(name, version)

    def search_versions(self, name: str, *, run_id: str | None = None) -> list[ModelVersion]:
        found = [self.get_version(name, p.name) for p in (self.root / name).glob("[0-9]*")]
        found = [v for v in found if run_id is None or v.run_id == run_id]
        return sorted(found, key=lambda v: -int(v.version))

    def download(self, name: str, version: str, dest: str) -> str:
        return shutil.copytree(self.root / name / version / "files", dest)

    def download_links(self, run_id: str, dest: str) -> str:
        return shutil.copytree(self.root / "runs" / run_id / "links", dest)

    def download_evidence(self, run_id: str, dest: str) -> str:
        return shutil.copytree(self.root / "runs" / run_id / "evidence", dest)

    def create_version(
        self,
        name: str,
        files_dir: str,
        *,
        links_dir: str | None = None,
        evidence: Mapping[str, str] | None = None,
        run_id: str | None = None,
    ) -> Registered:
        version = str(len(list((self.root / name).glob("[0-9]*"))) + 1)
        run = run_id or f"run-{name}-{version}"
        where = self.root / name / version
        shutil.copytree(files_dir, where / "files")
        (where / "tags.json").write_text("{}")
        (where / "run").write_text(run)
        runs = self.root / "runs" / run
        if links_dir:
            shutil.copytree(links_dir, runs / "links")
        (runs / "evidence").mkdir(parents=True, exist_ok=True)
        for rel, local in (evidence or {}).items():
            (runs / "evidence" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(local, runs / "evidence" / rel)
        return Registered(name, version, run, str(where / "files"))

    def set_tag(self, name: str, version: str, key: str, value: str) -> None:
        tags = self._tags(name, version)
        tags[key] = value
        (self.root / name / version / "tags.json").write_text(json.dumps(tags))

    def set_alias(self, name: str, alias: str, version: str) -> None:
        aliases = self._aliases(name)
        aliases[alias] = version
        (self.root / name / "aliases.json").write_text(json.dumps(aliases))

    def delete_alias(self, name: str, alias: str) -> None:
        aliases = self._aliases(name)
        aliases.pop(alias, None)
        (self.root / name / "aliases.json").write_text(json.dumps(aliases))


@pytest.fixture
def dirreg() -> Iterator[None]:
    from provenance.gate import registry

    registry.register_scheme("dirreg", DirectoryRegistry)
    yield
    registry._FACTORIES.pop("dirreg", None)


# --- Registry ------------------------------------------------------------------------------


def test_fetch_refuses_a_uri_of_no_known_registry_and_writes_nothing(project: Path, cli) -> None:
    before = snapshot(project)
    r = cli("fetch", "nosuch:/digits@champion", "serving", "--gate-pub-key", "keys/owner.pub")
    assert r.code == 2
    assert "'nosuch:/digits@champion' is not a model URI of a known registry (models:" in r.err
    assert snapshot(project) == before


def test_models_uris_resolve_to_mlflow_without_importing_it() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from provenance.gate import resolve, registry_factory\n"
        "f = registry_factory('models:/digits/3')\n"
        "print(f.__name__, f.parse_uri('models:/digits@champion'), 'mlflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        "MlflowRegistry ModelRef(uri='models:/digits@champion', name='digits', "
        "alias='champion', version=None) False"
    )


def test_a_second_registry_is_one_registered_scheme_and_the_whole_gate_runs_over_it(
    signed: Path, cli, dirreg: None, tmp_path: Path
) -> None:
    from provenance.errors import VerificationError
    from provenance.gate import load_verified, promote, register, resolve
    from provenance.signing import generate, load_public_key, load_signer

    generate("gate", str(tmp_path))
    reg, ref = resolve("dirreg:/digits@champion", location=str(tmp_path / "registry"))
    assert isinstance(reg, DirectoryRegistry) and ref.alias == "champion"
    made = register(
        "digits",
        "models",
        links_dir=".provenance/links",
        evidence=["metrics/metrics.json"],
        registry=reg,
    )
    assert reg.search_versions("digits") == [reg.get_version("digits", made.version)]
    assert reg.search_versions("digits", run_id="another") == []
    result = promote(
        "digits",
        made.version,
        "champion",
        layout="root.layout",
        layout_keys=[load_public_key("keys/owner.pub")],
        gate_signer=load_signer(str(tmp_path / "gate")),
        registry=reg,
    )
    assert result.promoted, result.verdict
    assert reg.get_by_alias("digits", "champion") == reg.get_version("digits", made.version)
    loaded = load_verified(
        "dirreg:/digits@champion",
        str(tmp_path / "serving"),
        str(tmp_path / "gate.pub"),
        tracking_uri=str(tmp_path / "registry"),
    )
    assert loaded.version == made.version and loaded.files == result.files
    # A file swapped in the registry after promotion: fetch refuses and leaves nothing.
    weights = next((tmp_path / "registry" / "digits" / made.version / "files").rglob("*.*"))
    weights.write_bytes(b"swapped")
    with pytest.raises(VerificationError, match="artifacts changed after promotion"):
        load_verified(
            "dirreg:/digits@champion",
            str(tmp_path / "again"),
            str(tmp_path / "gate.pub"),
            tracking_uri=str(tmp_path / "registry"),
        )
    assert not (tmp_path / "again").exists()


# --- RunContext ----------------------------------------------------------------------------


class Orchestrator:
    """What a Kubeflow or Airflow integration adds: the orchestrator's run is the pipeline run."""

    def __init__(self, run: str | None) -> None:
        self.run = run

    def run_id(self):  # type: ignore[no-untyped-def]
        from provenance.record import RunId

        return None if self.run is None else RunId(f"kfp:{self.run}", "KFP run")


@pytest.fixture
def orchestrator() -> Iterator[Orchestrator]:
    from provenance.record import add_run_context, remove_run_context

    ctx = Orchestrator("7f3a")
    add_run_context(ctx)
    yield ctx
    remove_run_context(ctx)


def test_an_added_run_context_names_the_run_after_provenance_run_id_and_before_ci(
    project: Path, cli, orchestrator: Orchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_RUN_ID", "99")
    assert cli("run", "a", "--key", "keys/trainer", "--", "true").code == 0
    monkeypatch.setenv("PROVENANCE_RUN_ID", "named")
    assert cli("run", "b", "--key", "keys/trainer", "--", "true").code == 0
    monkeypatch.delenv("PROVENANCE_RUN_ID")
    orchestrator.run = None  # not inside the orchestrator: detection decides again
    assert cli("run", "c", "--key", "keys/trainer", "--", "true").code == 0
    ids = {
        n.split(".")[0]: payload(project / LINKS / n)["environment"]["pipeline_run_id"]
        for n in links_in(project)
    }
    assert ids == {"a": "kfp:7f3a", "b": "named", "c": "gha:/99/1"}
    assert not (project / LINKS / "RUN_ID").exists()  # a dictated run writes no RUN_ID


# --- LinkSink ------------------------------------------------------------------------------


class CopySink:
    """An object store stand-in that outlives the task: a directory the link is copied to."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def store(self, link):  # type: ignore[no-untyped-def]
        dest = self.root / str(link.environment["pipeline_run_id"]) / Path(link.path).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(link.path, dest)
        return str(dest)


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[CopySink]:
    from provenance.record import add_link_sink, remove_link_sink

    s = CopySink(tmp_path / "store")
    add_link_sink(s)
    yield s
    remove_link_sink(s)


def test_an_added_link_sink_stores_the_signed_link_and_a_failed_step_stores_nothing(
    project: Path, cli, sink: CopySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVENANCE_RUN_ID", "r1")
    assert cli("run", "ok", "--key", "keys/trainer", "--", "true").code == 0
    (name,) = links_in(project)
    assert (sink.root / "r1" / name).read_bytes() == (project / LINKS / name).read_bytes()
    assert cli("run", "bad", "--key", "keys/trainer", "--", "false").code != 0
    assert links_in(project) == [name]
    assert sorted(p.name for p in (sink.root / "r1").iterdir()) == [name]


# --- Configuration -------------------------------------------------------------------------


def test_a_trust_anchor_is_never_read_from_the_projects_pyproject(project: Path, cli) -> None:
    """Whoever can write the working tree could name their own gate key in pyproject.toml:
    `fetch` takes the gate's public key from the flag or the environment only."""
    (project / "pyproject.toml").write_text('[tool.provenance]\ngate_public_key = "attacker.pub"\n')
    r = cli("fetch", "models:/digits@champion", "serving")
    assert r.code == 2 and "no gate public key" in r.err, r.err
    assert "attacker.pub" not in r.err
    assert not (project / "serving").exists()


def test_the_environment_wins_over_tool_provenance_and_the_flag_over_both(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provenance import _config

    (project / "pyproject.toml").write_text('[tool.provenance]\ntracking_uri = "http://toml"\n')
    get = _config.default("tracking_uri", env="MLFLOW_TRACKING_URI")
    assert get() == "http://toml"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env")
    assert get() == "http://env"
    assert _config.setting("tracking_uri", "http://flag", env="MLFLOW_TRACKING_URI") == (
        "http://flag"
    )
