"""`@step` parameters: faithful, deterministic canonical JSON; unrecordable values named."""

from __future__ import annotations

import enum
import json
import logging
import subprocess
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pydantic

import provenance
from provenance.record._params import record_parameters
from tests.conftest import links_in
from tests.unit.test_record import only_link, payload


class Optimizer(enum.Enum):
    SGD = "sgd"
    ADAM = "adam"


class Level(enum.IntEnum):
    LOW = 1


@dataclass
class Schedule:
    warmup: int
    decay: float = 0.5


@dataclass
class Config:
    data: Path
    optimizer: Optimizer
    schedule: Schedule
    tags: tuple[str, ...] = ("a", "b")
    seen: frozenset[int] = field(default_factory=lambda: frozenset({3, 1, 2}))


class Hyper(pydantic.BaseModel):
    lr: float
    layers: list[int]
    path: Path


def test_rich_parameters_are_recorded_faithfully() -> None:
    text, unrecordable = record_parameters(
        {
            "config": Config(Path("data/raw"), Optimizer.ADAM, Schedule(10)),
            "scale": np.float32(0.5),
            "steps": np.int64(7),
            "flag": np.bool_(True),
            "level": Level.LOW,
            "hyper": Hyper(lr=0.1, layers=[2, 3], path=Path("w")),
            "nested": {"a": [1, (2, 3)], "b": {4: PurePosixPath("x/y")}},
            "nan": float("nan"),
        }
    )
    assert unrecordable == []
    doc = json.loads(text)
    assert doc["config"] == {
        "$type": "tests.unit.test_params.Config",
        "$value": {
            "data": {"$type": "pathlib.PosixPath", "$value": "data/raw"},
            "optimizer": {"$type": "tests.unit.test_params.Optimizer", "$value": "ADAM"},
            "schedule": {
                "$type": "tests.unit.test_params.Schedule",
                "$value": {"decay": 0.5, "warmup": 10},
            },
            "tags": {"$type": "tuple", "$value": ["a", "b"]},
            "seen": {"$type": "frozenset", "$value": [1, 2, 3]},
        },
    }
    assert doc["scale"] == {"$type": "numpy.float32", "$value": 0.5}
    assert doc["steps"] == {"$type": "numpy.int64", "$value": 7}
    assert doc["flag"] == {"$type": "numpy.bool", "$value": True} or doc["flag"] == {
        "$type": "numpy.bool_",
        "$value": True,
    }
    assert doc["level"] == {"$type": "tests.unit.test_params.Level", "$value": "LOW"}
    assert doc["hyper"] == {
        "$type": "tests.unit.test_params.Hyper",
        "$value": {
            "layers": [2, 3],
            "lr": 0.1,
            "path": {"$type": "pathlib.PosixPath", "$value": "w"},
        },
    }
    assert doc["nested"] == {
        "a": [1, {"$type": "tuple", "$value": [2, 3]}],
        "b": {
            "$type": "dict",
            "$value": [[4, {"$type": "pathlib.PurePosixPath", "$value": "x/y"}]],
        },
    }
    assert doc["nan"] == {"$type": "float", "$value": "nan"}


def test_recording_is_deterministic_whatever_the_insertion_or_set_order() -> None:
    one = record_parameters({"b": {"y": 1, "x": {3, 1, 2}}, "a": OrderedDict([(2, "b"), (1, "a")])})
    two = record_parameters({"a": OrderedDict([(1, "a"), (2, "b")]), "b": {"x": {2, 3, 1}, "y": 1}})
    assert one == two
    assert one[0] == json.dumps(json.loads(one[0]), sort_keys=True, separators=(",", ":"))


def test_unrecordable_values_are_named_never_reprd() -> None:
    class Client:
        def __repr__(self) -> str:
            return "Client(token='s3cret')"

    text, unrecordable = record_parameters(
        {"client": Client(), "cfg": {"weights": np.zeros(3), "ok": 1}, "blob": b"s3cret"}
    )
    assert "s3cret" not in text
    assert unrecordable == [
        "client (tests.unit.test_params.test_unrecordable_values_are_named_never_reprd.<locals>.Client)",
        "cfg.weights (numpy.ndarray)",
        "blob (bytes)",
    ]
    assert json.loads(text)["cfg"] == {"weights": "<unrecordable numpy.ndarray>", "ok": 1}


def test_decorated_step_records_dataclass_and_path_and_warns_naming_the_rest(
    project: Path, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="provenance")

    @provenance.step("fit", key="keys/trainer")
    def fit(config: Config, weights: np.ndarray, out: Path = Path("models")) -> None: ...

    fit(Config(Path("data"), Optimizer.SGD, Schedule(1)), np.ones(2))
    data = payload(only_link(project))
    params = json.loads(data["command"][1])
    assert data["environment"]["parameters"] == data["command"][1]
    assert params["config"]["$value"]["data"] == {"$type": "pathlib.PosixPath", "$value": "data"}
    assert params["out"] == {"$type": "pathlib.PosixPath", "$value": "models"}
    assert params["weights"] == "<unrecordable numpy.ndarray>"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "step 'fit': parameters recorded by type only (no faithful JSON form): "
        "weights (numpy.ndarray)"
    ]
    step_lines = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("step 'fit':")
    ]
    assert len([line for line in step_lines if "materials" in line]) == 1


def test_decorated_script_prints_one_line_per_recorded_step_on_stderr(project: Path) -> None:
    Path("job.py").write_text(
        "import provenance\n"
        "@provenance.step('a', key='keys/trainer')\n"
        "def a(n: int) -> None: ...\n"
        "a(1)\na(2)\n"
    )
    proc = subprocess.run(
        [sys.executable, "job.py"], capture_output=True, text=True, check=True, cwd=project
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.stdout == ""
    assert [line.split(":")[0] for line in lines if "materials" in line] == ["provenance"] * 2
    assert all("step 'a'" in line for line in lines if "materials" in line)
    assert len(links_in(project)) == 1
