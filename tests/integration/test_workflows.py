"""The GitHub Actions workflows keep the supply-chain rules: least privilege, pinned actions,
no untrusted expressions inside shell, and the SLSA generator at a release tag."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / ".github" / "workflows").glob("*.yml"))
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
GENERATOR = re.compile(
    r"^slsa-framework/slsa-github-generator/\.github/workflows/generator_generic_slsa3\.yml"
    r"@v\d+\.\d+\.\d+$"
)
WRITE_SCOPES = {"id-token", "contents", "attestations", "packages", "actions"}


def load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return doc


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_top_level_permissions_are_empty_or_read_only(path: Path) -> None:
    perms = load(path)["permissions"]
    assert perms == {} or all(v == "read" for v in perms.values()), perms


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_by_sha_with_a_version_comment(path: Path) -> None:
    text = path.read_text()
    for line in text.splitlines():
        m = re.match(r"\s*(?:-\s*)?uses:\s*(\S+)(.*)$", line)
        if not m:
            continue
        ref, rest = m.groups()
        if GENERATOR.match(ref):
            continue  # the generator must be referenced by tag
        assert SHA_PIN.match(ref), line
        assert re.search(r"#\s*v\d", rest), f"no version comment: {line}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_expressions_inside_run_scripts(path: Path) -> None:
    for job in load(path)["jobs"].values():
        for step in job.get("steps", []):
            assert "${{" not in step.get("run", ""), step.get("name")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_write_scopes_only_on_jobs_that_need_them(path: Path) -> None:
    for name, job in load(path)["jobs"].items():
        perms = job.get("permissions", {})
        writes = {k for k, v in perms.items() if v == "write"}
        if writes:
            assert GENERATOR.match(job.get("uses", "")), f"job {name} writes {writes}"
            assert writes <= WRITE_SCOPES


def test_train_workflow_chains_train_provenance_verify_promote() -> None:
    jobs = load(next(p for p in WORKFLOWS if p.name == "train.yml"))["jobs"]
    assert set(jobs) == {"train", "provenance", "verify", "promote"}
    assert jobs["provenance"]["with"]["base64-subjects"] == "${{ needs.train.outputs.hashes }}"
    verify_runs = " ".join(s.get("run", "") for s in jobs["verify"]["steps"])
    for command in ("slsa-verifier verify-artifact", "provenance verify", "provenance slsa verify"):
        assert command in verify_runs


def test_reusable_workflow_is_callable() -> None:
    doc = load(next(p for p in WORKFLOWS if p.name == "slsa-pipeline.yml"))
    assert "workflow_call" in doc["on"]
    assert doc["on"]["workflow_call"]["inputs"]["pipeline-command"]["required"] is True


def test_ci_tests_the_oldest_and_newest_python_the_package_claims() -> None:
    root = Path(__file__).resolve().parents[2]
    requires = re.search(r'requires-python = ">=(3\.\d+)"', (root / "pyproject.toml").read_text())
    assert requires
    matrix = load(root / ".github/workflows/ci.yml")["jobs"]["test"]["strategy"]["matrix"]
    assert {requires.group(1), "3.11", "3.13"} <= set(matrix["python"])


def test_dependabot_updates_python_dependencies_and_actions_after_a_cooldown() -> None:
    config = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / ".github" / "dependabot.yml").read_text()
    )
    ecosystems = {u["package-ecosystem"]: u for u in config["updates"]}
    assert set(ecosystems) == {"pip", "github-actions"}
    assert all(u["cooldown"]["default-days"] >= 7 for u in ecosystems.values())
