"""Recording a dataset inside a step: one manifest artifact, a link that stays small.

`provenance run --dataset` and `@step(materials=[Dataset(...)])` write the manifest below the
project, record it as one material (or product) with its sha256, and describe it in
`environment.datasets`. Layout rules (`create`, `match … from`) then work on the manifest like
on any artifact: our verifier and upstream `in-toto-verify` pass the chain and refuse a dataset
that changed between the steps.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provenance.datasets import Dataset
from provenance.errors import UsageError
from tests.conftest import Result, in_toto_verify

COPY = "import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2])\n"


def link(root: Path, step: str) -> dict[str, Any]:
    (path,) = (root / ".provenance" / "links").glob(f"{step}.*.link")
    return dict(json.loads(base64.b64decode(json.loads(path.read_text())["payload"])))


def link_size(root: Path, step: str) -> int:
    (path,) = (root / ".provenance" / "links").glob(f"{step}.*.link")
    return path.stat().st_size


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    for name in ("data-eng", "trainer", "owner"):
        assert cli("keygen", name, "--dir", "keys").code == 0
    raw = root / "data" / "raw"
    for i in range(40):
        (raw / f"p{i % 4}").mkdir(parents=True, exist_ok=True)
        (raw / f"p{i % 4}" / f"s{i:03d}.csv").write_text(f"x,y\n{i},{i * i}\n")
    return root


def run_prepare(cli: Callable[..., Result]) -> Result:
    return cli(
        "run",
        "prepare",
        "--dataset",
        "data/raw",
        "--dataset-product",
        "data/clean",
        "--key",
        "keys/data-eng",
        "--",
        sys.executable,
        "-c",
        COPY,
        "data/raw",
        "data/clean",
    )


def test_run_records_each_dataset_as_one_manifest_artifact(
    proj: Path, cli: Callable[..., Result]
) -> None:
    r = run_prepare(cli)
    assert r.code == 0, r.err
    doc = link(proj, "prepare")
    (mat,) = doc["materials"]
    (prod,) = doc["products"]
    assert mat.startswith(".provenance/datasets/data_raw-") and mat.endswith(".manifest")
    assert prod.startswith(".provenance/datasets/data_clean-")
    for path in (mat, prod):
        body = (proj / path).read_bytes()
        assert body.startswith(b"#ml-provenance-dataset/1\tsha256\tlocal\n")
    assert doc["materials"][mat]["sha256"] == hashlib.sha256((proj / mat).read_bytes()).hexdigest()
    assert doc["products"][prod]["sha256"] == doc["materials"][mat]["sha256"]  # same members
    env = doc["environment"]["datasets"]
    assert env["materials"][mat] == {
        "source": "data/raw",
        "kind": "local",
        "members": 40,
        "bytes": sum(p.stat().st_size for p in (proj / "data/raw").rglob("*.csv")),
        "engine": "local",
    }
    assert env["products"][prod]["source"] == "data/clean"


def test_link_size_does_not_grow_with_the_member_count(
    proj: Path, cli: Callable[..., Result]
) -> None:
    assert run_prepare(cli).code == 0
    small = link_size(proj, "prepare")
    for i in range(40, 5000):
        (proj / "data" / "raw" / f"extra-{i:05d}.csv").write_text(str(i))
    import shutil

    shutil.rmtree(proj / "data" / "clean")
    assert run_prepare(cli).code == 0
    large = link_size(proj, "prepare")
    assert abs(large - small) < 200 and large < 10_000, (small, large)


LAYOUT = """\
expires: 30d
functionaries:
  data-eng: keys/data-eng.pub
  trainer: keys/trainer.pub
steps:
  - name: prepare
    functionaries: [data-eng]
    materials:
      - allow: ".provenance/datasets/data_raw-*.manifest"
    products:
      - create: ".provenance/datasets/data_clean-*.manifest"
  - name: train
    functionaries: [trainer]
    materials:
      - match: ".provenance/datasets/data_clean-*.manifest"
        from: prepare
    products:
      - create: "model.bin"
"""


def test_layout_rules_match_the_manifest_like_any_artifact(
    proj: Path, cli: Callable[..., Result]
) -> None:
    assert run_prepare(cli).code == 0
    train = "open('model.bin', 'w').write('weights')"
    r = cli(
        "run",
        "train",
        "--dataset",
        "data/clean",
        "-p",
        "model.bin",
        "--key",
        "keys/trainer",
        "--",
        sys.executable,
        "-c",
        train,
    )
    assert r.code == 0, r.err
    (proj / "layout.yaml").write_text(LAYOUT)
    r = cli("layout", "sign", "layout.yaml", "--key", "keys/owner", "-o", "root.layout")
    assert r.code == 0, r.err
    r = cli("verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub")
    assert r.code == 0, r.out + r.err
    assert in_toto_verify(proj).returncode == 0

    # The dataset changes between the steps: train's manifest no longer matches prepare's.
    (proj / "data" / "clean" / "p0" / "s000.csv").write_text("tampered")
    r = cli(
        "run",
        "train",
        "--dataset",
        "data/clean",
        "-p",
        "model.bin",
        "--key",
        "keys/trainer",
        "--",
        sys.executable,
        "-c",
        train,
    )
    assert r.code == 0
    r = cli("verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub")
    assert r.code == 1 and "data_clean-" in r.out + r.err
    assert in_toto_verify(proj).returncode != 0


def test_step_decorator_records_a_dataset_material(proj: Path) -> None:
    script = proj / "train.py"
    script.write_text(
        "import provenance\n"
        "from provenance.datasets import Dataset\n"
        "@provenance.step('train', materials=[Dataset('data/raw'), 'train.py'],"
        " products=['model.bin'], key='keys/trainer')\n"
        "def train():\n"
        "    open('model.bin', 'w').write('w')\n"
        "train()\n"
    )
    subprocess.run([sys.executable, str(script)], cwd=proj, check=True, capture_output=True)
    doc = link(proj, "train")
    assert sorted(doc["materials"]) == [Dataset("data/raw").manifest_path, "train.py"]
    assert (
        doc["environment"]["datasets"]["materials"][Dataset("data/raw").manifest_path]["members"]
        == 40
    )


def test_unreadable_dataset_member_writes_no_link_and_does_not_run(
    proj: Path, cli: Callable[..., Result]
) -> None:
    (proj / "data" / "raw" / "broken").symlink_to(proj / "data" / "raw" / "gone")
    r = cli(
        "run",
        "prepare",
        "--dataset",
        "data/raw",
        "--key",
        "keys/data-eng",
        "--",
        sys.executable,
        "-c",
        "open('ran', 'w')",
    )
    assert r.code == 3 and "broken" in r.err
    assert not (proj / "ran").exists()
    assert not list((proj / ".provenance").rglob("*.link"))


def test_dataset_arguments_are_checked_when_declared() -> None:
    with pytest.raises(UsageError):
        Dataset("")
    with pytest.raises(UsageError, match="unknown engine"):
        Dataset("data", engine="spark")
    with pytest.raises(Exception, match="escapes"):
        Dataset("data", manifest="../outside.manifest")


PREPARE_ONLY = """\
expires: 30d
functionaries:
  data-eng: keys/data-eng.pub
steps:
  - name: prepare
    functionaries: [data-eng]
    materials:
      - allow: ".provenance/datasets/data_raw-*.manifest"
    products:
      - create: ".provenance/datasets/data_clean-*.manifest"
"""


def test_verify_checks_a_final_dataset_product_against_its_real_members(
    proj: Path, cli: Callable[..., Result]
) -> None:
    assert run_prepare(cli).code == 0
    (proj / "layout.yaml").write_text(PREPARE_ONLY)
    assert (
        cli("layout", "sign", "layout.yaml", "--key", "keys/owner", "-o", "root.layout").code == 0
    )
    r = cli("verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub", "--json")
    assert r.code == 0, r.out
    assert "datasets" in json.loads(r.out)["phases"]

    # The manifest file is untouched, but the members it lists are not what is on disk.
    (proj / "data" / "clean" / "p1" / "s001.csv").write_text("tampered")
    (proj / "data" / "clean" / "planted.csv").write_text("p")
    r = cli("verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub")
    assert r.code == 1
    assert "dataset data/clean of step 'prepare' does not match its manifest" in r.out
    assert "1 extra, 1 changed" in r.out
    assert "hash mismatch for 'p1/s001.csv'" in r.out and "extra file: 'planted.csv'" in r.out


SHARDS_LAYOUT = LAYOUT.replace(
    '      - create: "model.bin"\n',
    '      - create: "models/*"\n      - create: ".provenance/datasets/models_shards-*.manifest"\n',
)
SHARDS = (
    "import os\nos.makedirs('models/shards', exist_ok=True)\n"
    "open('models/model.bin', 'w').write('weights')\n"
    "for i in range(3):\n    open(f'models/shards/s{i}.bin', 'w').write(str(i))\n"
)


def train_with_shards(cli: Callable[..., Result]) -> None:
    """prepare, then train writing models/model.bin file by file and models/shards as a dataset."""
    assert run_prepare(cli).code == 0
    r = cli(
        "run", "train", "--dataset", "data/clean", "-p", "models/model.bin",
        "--dataset-product", "models/shards", "--key", "keys/trainer",
        "--", sys.executable, "-c", SHARDS,
    )  # fmt: skip
    assert r.code == 0, r.err


@pytest.mark.parametrize(
    ("planted", "words"),
    [
        ("models/backdoor.pkl", "extra file: 'models/backdoor.pkl'"),  # beside the dataset
        ("models/shards/planted.bin", "extra file: 'planted.bin'"),  # among its members
    ],
)
def test_a_dataset_product_inside_a_product_directory_hides_nothing_beside_it(
    proj: Path, cli: Callable[..., Result], planted: str, words: str
) -> None:
    """train writes its weights file by file and its shards as a dataset, both under models/:
    the dataset's members go to the datasets check, the rest of models/ stays claimed."""
    train_with_shards(cli)
    (proj / "layout.yaml").write_text(SHARDS_LAYOUT)
    r = cli("layout", "sign", "layout.yaml", "--key", "keys/owner", "-o", "root.layout")
    assert r.code == 0, r.err
    verify = ("verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub")
    r = cli(*verify)
    assert r.code == 0, r.out + r.err
    (proj / planted).write_bytes(b"planted after the run")
    r = cli(*verify)
    assert r.code == 1 and words in r.out, r.out
    # --artifact narrows what is checked, never what a selected directory may hold
    for selected in ("models/*", *(["models/shards/*"] if "shards/" in planted else [])):
        r = cli(*verify, "--artifact", selected, "--json")
        named = {f.get("artifact") for f in json.loads(r.out)["failures"]}
        assert r.code == 1 and planted in named, (selected, named)


TAKEOVER_LAYOUT = (
    SHARDS_LAYOUT
    + """\
  - name: evaluate
    functionaries: [data-eng]
    products:
      - create: "metrics/*"
      - create: ".provenance/datasets/*"
"""
)


def test_a_step_cannot_take_over_another_steps_directory_as_its_dataset(
    proj: Path, cli: Callable[..., Result]
) -> None:
    """evaluate may write metrics/ and manifests; recording train's models/ as its own dataset
    product (after a file was planted there) must not exempt models/ from train's claim."""
    train_with_shards(cli)
    (proj / "models" / "backdoor.pkl").write_bytes(b"planted")
    r = cli(
        "run", "evaluate", "--dataset-product", "models", "--key", "keys/data-eng",
        "--", sys.executable, "-c", "import os; os.makedirs('metrics', exist_ok=True)",
    )  # fmt: skip
    assert r.code == 0, r.err
    (proj / "layout.yaml").write_text(TAKEOVER_LAYOUT)
    r = cli("layout", "sign", "layout.yaml", "--key", "keys/owner", "-o", "root.layout")
    assert r.code == 0, r.err
    verify = ("verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub", "--json")
    selections = [(), ("--artifact", "models/*", "--artifact", ".provenance/datasets/*"),
                  ("--artifact", "**")]  # fmt: skip
    for selected in selections:  # --artifact narrows the report, never the claims
        r = cli(*verify, *selected)
        named = {f.get("artifact") for f in json.loads(r.out)["failures"]}
        assert r.code == 1 and "models/backdoor.pkl" in named, (selected, named)


PARENT_LAYOUT = """\
expires: 30d
functionaries:
  data-eng: keys/data-eng.pub
  trainer: keys/trainer.pub
steps:
  - name: train
    functionaries: [trainer]
    products:
      - create: "out/models/*"
  - name: evaluate
    functionaries: [data-eng]
    materials:
      - match: "out/models/*"
        from: train
    products:
      - create: "out/metrics/*"
      - create: ".provenance/datasets/*"
"""


def test_a_step_cannot_take_over_another_steps_directory_through_its_parent(
    proj: Path, cli: Callable[..., Result]
) -> None:
    """evaluate records out/ (which holds train's out/models/) as its dataset product: the
    file planted in out/models/ is still train's to account for."""
    weights = "import os; os.makedirs('out/models'); open('out/models/m.bin', 'w').write('w')"
    r = cli(
        "run", "train", "-p", "out/models/m.bin", "--key", "keys/trainer",
        "--", sys.executable, "-c", weights,
    )  # fmt: skip
    assert r.code == 0, r.err
    (proj / "out" / "models" / "backdoor.pkl").write_bytes(b"planted")
    metrics = "import os; os.makedirs('out/metrics'); open('out/metrics/m.json', 'w').write('{}')"
    r = cli(
        "run", "evaluate", "-m", "out/models/m.bin", "-p", "out/metrics/m.json",
        "--dataset-product", "out", "--key", "keys/data-eng",
        "--", sys.executable, "-c", metrics,
    )  # fmt: skip
    assert r.code == 0, r.err
    (proj / "layout.yaml").write_text(PARENT_LAYOUT)
    r = cli("layout", "sign", "layout.yaml", "--key", "keys/owner", "-o", "root.layout")
    assert r.code == 0, r.err
    r = cli("verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub")
    assert r.code == 1 and "extra file: 'out/models/backdoor.pkl'" in r.out, r.out


BESIDE_LAYOUT = PREPARE_ONLY.replace(
    '      - create: ".provenance/datasets/data_clean-*.manifest"\n',
    '      - create: "data/clean/*"\n      - create: ".provenance/datasets/*"\n',
)


@pytest.mark.parametrize("source", ["data/clean/train", "./data/clean/train", "data//clean/train"])
@pytest.mark.parametrize("planted", ["data/clean/evil.csv", "data/clean/test/evil.csv"])
def test_a_file_planted_beside_a_dataset_in_its_steps_directory_fails(
    proj: Path, cli: Callable[..., Result], planted: str, source: str
) -> None:
    """prepare owns data/clean/ and fills it only as the dataset data/clean/train (however its
    source is spelled): writing a dataset there claims the directory, so a file beside the
    dataset is extra."""
    r = cli(
        "run", "prepare", "--dataset", "data/raw", "--dataset-product", source,
        "--key", "keys/data-eng", "--", sys.executable, "-c", COPY, "data/raw", "data/clean/train",
    )  # fmt: skip
    assert r.code == 0, r.err
    (proj / "layout.yaml").write_text(BESIDE_LAYOUT)
    r = cli("layout", "sign", "layout.yaml", "--key", "keys/owner", "-o", "root.layout")
    assert r.code == 0, r.err
    verify = ("verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub")
    assert cli(*verify).code == 0
    (proj / planted).parent.mkdir(parents=True, exist_ok=True)
    (proj / planted).write_bytes(b"planted after the run")
    r = cli(*verify)
    assert r.code == 1 and f"extra file: '{planted}'" in r.out, r.out


RERECORD_LAYOUT = (
    BESIDE_LAYOUT
    + """\
  - name: evaluate
    functionaries: [trainer]
    products:
      - create: ".provenance/datasets/*"
"""
)


@pytest.mark.parametrize(
    ("folder", "planted"),
    [("data/clean", "data/clean/evil.csv"), ("data/clean/p0", "data/clean/p0/evil.csv")],
)
def test_a_later_step_recording_the_same_dataset_does_not_vouch_for_a_plant(
    proj: Path, cli: Callable[..., Result], folder: str, planted: str
) -> None:
    """evaluate re-records prepare's dataset (same manifest path) after a file was planted in
    it: the chain then ends with evaluate's manifest, but data/clean/ is still prepare's."""
    r = cli(
        "run", "prepare", "--dataset", "data/raw", "--dataset-product", "data/clean",
        "--key", "keys/data-eng", "--", sys.executable, "-c", COPY, "data/raw", "data/clean",
    )  # fmt: skip
    assert r.code == 0, r.err
    (proj / planted).write_bytes(b"planted")  # prepare's folder, around or inside its dataset
    r = cli(
        "run", "evaluate", "--dataset-product", "data/clean", "--key", "keys/trainer",
        "--", sys.executable, "-c", "pass",
    )  # fmt: skip
    assert r.code == 0, r.err
    (proj / "layout.yaml").write_text(RERECORD_LAYOUT.replace(
        "  data-eng: keys/data-eng.pub\n", "  data-eng: keys/data-eng.pub\n  trainer: keys/trainer.pub\n"
    ).replace('"data/clean/*"', f'"{folder}/*"'))  # fmt: skip
    r = cli("layout", "sign", "layout.yaml", "--key", "keys/owner", "-o", "root.layout")
    assert r.code == 0, r.err
    r = cli("verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub")
    assert r.code == 1 and f"extra file: '{planted}'" in r.out + r.err, r.out + r.err


ENTITLED_LAYOUT = (  # evaluate may also write data/clean/
    RERECORD_LAYOUT.replace(
        "  data-eng: keys/data-eng.pub\n",
        "  data-eng: keys/data-eng.pub\n  trainer: keys/trainer.pub\n",
    )
    + '      - create: "data/clean/*"\n'
)


def test_a_later_step_the_owner_gives_the_directory_may_record_the_dataset_again(
    proj: Path, cli: Callable[..., Result]
) -> None:
    """evaluate adds a member to prepare's dataset in place and records it again; the owner's
    rules give evaluate data/clean/ too: its manifest vouches for the members, and a plant
    after that is still caught."""
    r = cli(
        "run", "prepare", "--dataset", "data/raw", "--dataset-product", "data/clean",
        "--key", "keys/data-eng", "--", sys.executable, "-c", COPY, "data/raw", "data/clean",
    )  # fmt: skip
    assert r.code == 0, r.err
    add = "open('data/clean/added.csv', 'w').write('x,y\\n1,1\\n')"
    r = cli(
        "run", "evaluate", "--dataset-product", "data/clean", "--key", "keys/trainer",
        "--", sys.executable, "-c", add,
    )  # fmt: skip
    assert r.code == 0, r.err
    (proj / "layout.yaml").write_text(ENTITLED_LAYOUT)
    r = cli("layout", "sign", "layout.yaml", "--key", "keys/owner", "-o", "root.layout")
    assert r.code == 0, r.err
    verify = ("verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub")
    r = cli(*verify)
    assert r.code == 0, r.out + r.err
    (proj / "data" / "clean" / "evil.csv").write_bytes(b"planted")
    r = cli(*verify)
    assert r.code == 1 and "evil.csv" in r.out, r.out
