"""Distributed training: every rank runs the step, exactly one rank records its link.

The ranks are real processes started at once with the variables torchrun/accelerate, Open MPI
and Slurm set, as a launcher would.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import provenance
from provenance.errors import UsageError
from tests.conftest import BIN, links_in

SCRIPT = """
import os, sys
from pathlib import Path
import provenance

@provenance.step("train", materials=["data/**"], products=["out/**"])
def train():
    rank = os.environ.get("RANK") or os.environ.get("OMPI_COMM_WORLD_RANK") or "?"
    Path("ranks").mkdir(exist_ok=True)
    Path("ranks", rank).write_text("ran")
    if rank == os.environ.get("WRITER", "0"):
        Path("out").mkdir(exist_ok=True)
        Path("out/model.bin").write_bytes(b"weights")

train()
"""


def launch(
    root: Path, world: int, names: tuple[str, str], **extra: str
) -> list[subprocess.CompletedProcess[str]]:
    """Start `world` ranks of SCRIPT at once, like a launcher; wait for all of them."""
    (root / "dist_step.py").write_text(SCRIPT)
    procs = []
    for rank in range(world):
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
        env.update({names[0]: str(rank), names[1]: str(world), "LOCAL_RANK": str(rank)})
        env.update({"PROVENANCE_KEY": "keys/trainer", "PYTHONPATH": str(root), **extra})
        procs.append(
            subprocess.Popen(
                [sys.executable, "dist_step.py"],
                cwd=root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return [subprocess.CompletedProcess(p.args, p.wait(), *p.communicate()) for p in procs]


def environment_of(root: Path) -> dict:
    (name,) = links_in(root)
    envelope = json.loads((root / ".provenance/links" / name).read_bytes())
    link = json.loads(base64.b64decode(envelope["payload"]))
    assert list(link["products"]) == ["out/model.bin"]
    return link["environment"]


def test_torchrun_ranks_record_one_link_from_rank_0(project: Path) -> None:
    done = launch(project, 4, ("RANK", "WORLD_SIZE"))
    assert [p.returncode for p in done] == [0, 0, 0, 0], [p.stderr for p in done]
    assert sorted(p.name for p in (project / "ranks").iterdir()) == ["0", "1", "2", "3"]
    assert environment_of(project)["distributed"] == {
        "world_size": 4,
        "recorded_by_rank": 0,
        "launcher": "torchrun/accelerate",
    }


def test_configured_record_rank_records_and_other_ranks_need_no_key(project: Path) -> None:
    """Only the recording node holds the key: the others run with none and write nothing."""
    (project / "pyproject.toml").write_text("[tool.provenance]\nrecord_rank = 2\n")
    (project / "dist_step.py").write_text(SCRIPT)
    done = launch(project, 3, ("RANK", "WORLD_SIZE"), WRITER="2", PROVENANCE_KEY="keys/absent")
    assert [p.returncode for p in done[:2]] == [0, 0], [p.stderr for p in done]
    # rank 2 is the recorder and has no key either: it refuses before its step runs
    assert done[2].returncode != 0 and "keys/absent" in done[2].stderr
    assert links_in(project) == []
    assert not (project / "ranks" / "2").exists()

    rerun = launch(project, 3, ("RANK", "WORLD_SIZE"), WRITER="2")
    assert [p.returncode for p in rerun] == [0, 0, 0], [p.stderr for p in rerun]
    assert environment_of(project)["distributed"]["recorded_by_rank"] == 2


def test_open_mpi_ranks_record_one_link(project: Path) -> None:
    done = launch(project, 2, ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"))
    assert [p.returncode for p in done] == [0, 0], [p.stderr for p in done]
    assert environment_of(project)["distributed"]["launcher"] == "Open MPI"


INCONSISTENT = [
    ({"RANK": "one", "WORLD_SIZE": "4"}, "RANK='one': not a rank"),
    ({"RANK": "4", "WORLD_SIZE": "4"}, "RANK=4 is outside WORLD_SIZE=4"),
    ({"RANK": "0", "WORLD_SIZE": "0"}, "RANK=0 is outside WORLD_SIZE=0"),
    ({"RANK": "0"}, "RANK is set but WORLD_SIZE is not"),
    ({"WORLD_SIZE": "2"}, "WORLD_SIZE is set but RANK is not"),
    ({"RANK": "0", "WORLD_SIZE": "2", "PROVENANCE_RECORD_RANK": "2"}, "no process would record"),
    ({"RANK": "0", "WORLD_SIZE": "2", "PROVENANCE_RECORD_RANK": "-1"}, "not a rank"),
    ({"SLURM_PROCID": "1"}, "SLURM_PROCID is set but SLURM_NTASKS is not"),
]


def test_inconsistent_launcher_variables_refuse_before_the_step_runs(project: Path) -> None:
    """A guess could leave the pipeline with no link or one per rank: each case is refused."""
    (project / "dist_step.py").write_text(SCRIPT)
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    for env, message in INCONSISTENT:
        proc = subprocess.run(
            [sys.executable, "dist_step.py"],
            cwd=project,
            env={**base, **env, "PROVENANCE_KEY": "keys/trainer", "PYTHONPATH": str(project)},
            capture_output=True,
            text=True,
        )
        assert proc.returncode != 0, env
        assert message in proc.stderr, (env, proc.stderr)
        assert links_in(project) == [], env
        assert not (project / "ranks").exists(), env


@pytest.mark.parametrize("bad", [-1, True, "0", 1.0])
def test_bad_record_rank_is_refused_where_the_step_is_declared(bad: object) -> None:
    with pytest.raises(UsageError, match="record_rank must be a non-negative integer"):
        provenance.step("s", record_rank=bad)  # type: ignore[arg-type]


WRITE_OUT = "import pathlib; pathlib.Path('out').mkdir(); pathlib.Path('out/m').write_text('m')"


def provenance_run_as(project: Path, rank: int) -> dict:
    """`provenance run` as rank `rank` of 2; its --json document."""
    proc = subprocess.run(
        [str(BIN / "provenance"), "run", "train", "-p", "out/**", "--key", "keys/trainer",
         "--json", "--", sys.executable, "-c", WRITE_OUT],
        cwd=project,
        env={**os.environ, "RANK": str(rank), "WORLD_SIZE": "2"},
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_provenance_run_on_a_non_recording_rank_runs_the_command_only(project: Path) -> None:
    assert provenance_run_as(project, 1) == {"step": "train", "link": None}
    assert (project / "out/m").read_text() == "m"
    assert links_in(project) == []

    (project / "out/m").unlink()
    (project / "out").rmdir()
    assert provenance_run_as(project, 0)["link"]
    assert len(links_in(project)) == 1


def test_a_plain_slurm_batch_job_is_one_process(project: Path) -> None:
    """`sbatch` without --ntasks sets SLURM_PROCID=0 and no task count: the step records."""
    (project / "dist_step.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env.update({"SLURM_PROCID": "0", "WRITER": "?", "PROVENANCE_KEY": "keys/trainer"})
    env["PYTHONPATH"] = str(project)
    proc = subprocess.run(
        [sys.executable, "dist_step.py"], cwd=project, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "distributed" not in environment_of(project)
