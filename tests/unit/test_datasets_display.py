"""A dataset is one node: trace, inspect, report (Markdown, HTML) and the ML-BOM.

A step that records a dataset records one artifact, its manifest, and describes it in the
link's `environment.datasets` (source, kind, members, bytes, engine). Every view shows that
dataset as one node with its source, member count, size and manifest sha256, as the verified
link records them, and never shows a description the link's artifacts do not back.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provenance.datasets import Dataset, human_bytes, recorded_datasets
from tests.conftest import Result, snapshot

COPY = "import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2])\n"
TRAIN = "import os; os.makedirs('models', exist_ok=True); open('models/model.bin', 'w').write('w')"
RAW = Dataset("data/raw").manifest_path
CLEAN = Dataset("data/clean").manifest_path
MEMBERS = 40

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
      - create: "models/*"
model:
  step: train
  products: "models/*"
"""


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def link_path(step: str) -> Path:
    (path,) = Path(".provenance/links").glob(f"{step}.*.link")
    return path


def link_doc(step: str) -> dict[str, Any]:
    payload = json.loads(link_path(step).read_text())["payload"]
    return dict(json.loads(base64.b64decode(payload)))


def build(root: Path, cli: Callable[..., Result], raw: str = "data/raw") -> None:
    """prepare (dataset `raw` -> dataset data/clean), train (data/clean -> models/), signed."""
    for name in ("data-eng", "trainer", "owner"):
        assert cli("keygen", name, "--dir", "keys").code == 0
    for i in range(MEMBERS):
        part = root / raw / f"p{i % 4}"
        part.mkdir(parents=True, exist_ok=True)
        (part / f"s{i:03d}.csv").write_text(f"x,y\n{i},{i * i}\n" * (i + 1))
    run = ("--", sys.executable, "-c")
    r = cli(
        "run", "prepare", "--dataset", raw, "--dataset-product", "data/clean",
        "--key", "keys/data-eng", *run, COPY, raw, "data/clean",
    )  # fmt: skip
    assert r.code == 0, r.err
    r = cli(
        "run", "train", "--dataset", "data/clean", "-p", "models/*", "--key", "keys/trainer",
        *run, TRAIN,
    )  # fmt: skip
    assert r.code == 0, r.err
    layout = LAYOUT.replace("data_raw-*", "*") if raw != "data/raw" else LAYOUT
    (root / "layout.yaml").write_text(layout)
    r = cli("layout", "sign", "layout.yaml", "--key", "keys/owner", "-o", "root.layout")
    assert r.code == 0, r.err


@pytest.fixture
def chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    build(root, cli)
    return root


VERIFIED = ("--layout", "root.layout", "--layout-key", "keys/owner.pub")


def total_bytes(directory: str) -> int:
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())


def test_trace_shows_each_dataset_as_one_node(chain: Path, cli: Callable[..., Result]) -> None:
    before = snapshot(chain)
    size = human_bytes(total_bytes("data/clean"))
    r = cli("trace", "models/model.bin", *VERIFIED)
    assert r.code == 0, r.err
    assert f"dataset data/clean: {MEMBERS} members, {size} (recorded)" in r.out
    assert f"manifest {CLEAN}" in r.out
    assert f"dataset data/raw: {MEMBERS} members" in r.out  # the raw input, one node too
    assert "s000.csv" not in r.out  # no member is a node of its own

    doc = json.loads(cli("trace", "models/model.bin", *VERIFIED, "--json").out)
    (train,) = doc["produced_by"]
    (clean,) = train["materials"]
    assert clean["step"] == "prepare" and clean["path"] == CLEAN
    assert clean["dataset"] == {
        "side": "products",
        "manifest": CLEAN,
        "manifest_sha256": sha256(CLEAN),
        "source": "data/clean",
        "kind": "local",
        "members": MEMBERS,
        "bytes": total_bytes("data/clean"),
        "size": size,
        "engine": "local",
    }
    (raw,) = doc["raw_inputs"]
    assert raw["path"] == RAW and raw["dataset"]["manifest_sha256"] == sha256(RAW)
    assert snapshot(chain) == before  # trace writes nothing


def test_trace_finds_a_dataset_by_its_source(chain: Path, cli: Callable[..., Result]) -> None:
    r = cli("trace", "data/clean/", *VERIFIED, "--json")
    assert r.code == 0, r.err
    (root,) = json.loads(r.out)["produced_by"]
    assert root["step"] == "prepare" and root["path"] == CLEAN
    assert root["dataset"]["members"] == MEMBERS
    assert cli("trace", "data/elsewhere", *VERIFIED).code == 1


def test_inspect_lists_the_datasets_a_link_records(chain: Path, cli: Callable[..., Result]) -> None:
    r = cli("inspect", link_path("prepare"), "--key", "keys/data-eng.pub")
    assert r.code == 0, r.err
    assert "signature: VALID" in r.out and "datasets (recorded by the step): 2" in r.out
    assert (
        f"material: data/raw: {MEMBERS} members, {human_bytes(total_bytes('data/raw'))}; "
        f"manifest {RAW} sha256:{sha256(RAW)}"
    ) in r.out
    assert f"product: data/clean: {MEMBERS} members" in r.out
    doc = json.loads(cli("inspect", link_path("prepare"), "--json").out)
    (described,) = doc["documents"]
    assert described["unverified"] is True  # no key given: the whole description is a claim
    assert [d["source"] for d in described["fields"]["datasets"]] == ["data/raw", "data/clean"]


def test_report_shows_datasets_in_markdown_and_html(
    chain: Path, cli: Callable[..., Result]
) -> None:
    r = cli("report", *VERIFIED, "--format", "markdown")
    assert r.code == 0, r.err
    md = r.out
    assert "### Datasets" in md
    size = human_bytes(total_bytes("data/clean"))
    row = (
        f"| train | material | <code>data/clean</code> | {MEMBERS} | {size} | "
        f"<code>.provenance/datasets/data&#95;clean-"
    )
    assert row in md, md
    assert f"<code>{sha256(CLEAN)}</code>" in md
    assert '-->|"1 dataset"|' in md  # the edge carries one dataset, not "1 file"
    # The steps table names the dataset, not its manifest file.
    assert f"| 1: dataset <code>data/clean</code> ({MEMBERS} members) | 1: <code>models/" in md
    assert "| datasets | **PASS** |" in md

    assert cli("report", *VERIFIED, "-o", "report.html").code == 0
    page = Path("report.html").read_text()
    assert "<h2>Datasets</h2>" in page
    assert (f"<strong>dataset</strong> <code>data/clean</code> ({MEMBERS} members, {size})") in page
    assert f"<code>{sha256(RAW)}</code>" in page and ">1 dataset<" in page
    steps = page.split('<table class="steps">', 1)[1].split("</table>", 1)[0]
    assert f"<td>1<br><strong>dataset</strong> <code>data/clean</code> ({MEMBERS} members" in steps


HOSTILE = "data/r<img src=x onerror=alert(1)>&\"q'|*`[x](y)"


def test_a_hostile_dataset_source_is_escaped_in_every_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]
) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    build(root, cli, raw=HOSTILE)
    assert cli("report", *VERIFIED, "-o", "report.html").code == 0
    page = Path("report.html").read_text()
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;&amp;&quot;q&#x27;" in page
    md = cli("report", *VERIFIED, "--format", "markdown").out
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;&amp;&quot;q&#x27;&#124;" in md
    r = cli("trace", "models/model.bin", *VERIFIED)
    assert r.code == 0 and f"dataset {HOSTILE}: {MEMBERS} members" in r.out


def test_bom_has_one_data_component_per_dataset(chain: Path, cli: Callable[..., Result]) -> None:
    importlib.import_module("cyclonedx")
    r = cli("bom", *VERIFIED, "-o", "bom.cdx.json")
    assert r.code == 0, r.err  # build_bom validates against the CycloneDX 1.6 schema
    bom = json.loads(Path("bom.cdx.json").read_text())
    by_name = {c["name"]: c for c in bom["components"]}
    clean = by_name["data/clean"]
    assert clean["type"] == "data"
    assert clean["hashes"] == [{"alg": "SHA-256", "content": sha256(CLEAN)}]
    assert clean["bom-ref"] == f"artifact:{CLEAN}@sha256:{sha256(CLEAN)}"
    (data,) = clean["data"]
    props = {p["name"]: p["value"] for p in data["contents"]["properties"]}
    assert data["type"] == "dataset"
    assert props["ml-provenance:dataset-members"] == str(MEMBERS)
    assert props["ml-provenance:dataset-bytes"] == str(total_bytes("data/clean"))
    assert props["ml-provenance:dataset-manifest"] == CLEAN
    assert {p["name"]: p["value"] for p in clean["properties"]}[
        "ml-provenance:produced-by"
    ] == "prepare"
    assert by_name["data/raw"]["hashes"][0]["content"] == sha256(RAW)
    assert CLEAN not in by_name and RAW not in by_name  # the manifest is not a second component
    card = bom["metadata"]["component"]["modelCard"]
    assert {"ref": clean["bom-ref"]} in card["modelParameters"]["datasets"]


def test_a_description_the_artifacts_do_not_back_is_not_shown() -> None:
    sha = "a" * 64
    env = {
        "datasets": {
            "materials": {
                "m.manifest": {"source": "s3://b/p", "kind": "s3", "members": 3, "bytes": 10},
                "unrecorded.manifest": {"source": "forged", "members": 10**9, "bytes": 1},
            },
            "products": {"p.manifest": {"source": "d", "members": True, "bytes": -1, "kind": 7}},
            "read": {sha: {"shards_read": 2, "bytes_read": 5, "completed": True, "x": "y"}},
        }
    }
    found = recorded_datasets(
        env, {"m.manifest": {"sha256": sha}}, {"p.manifest": "b" * 64, "other": "c" * 64}
    )
    assert [(d.side, d.manifest, d.sha256) for d in found] == [
        ("materials", "m.manifest", sha),
        ("products", "p.manifest", "b" * 64),
    ]
    material, product = found
    assert (material.source, material.kind, material.members, material.size) == (
        "s3://b/p",
        "s3",
        3,
        "10 B",
    )
    assert material.read == {"shards_read": 2, "bytes_read": 5, "completed": True}
    # Ill-typed values are not shown as facts: a bool is not a count, sizes are not negative.
    assert (product.members, product.bytes, product.kind, product.size) == (None, None, None, "?")
    assert recorded_datasets({"datasets": []}, {}, {}) == []
    assert recorded_datasets({}, {"m.manifest": {"sha256": sha}}, {}) == []


def test_sizes_are_shown_for_people() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 1536, 5 << 30, 50 * 10**12)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 KiB",
        "5.0 GiB",
        "45.5 TiB",
    ]


def test_inspect_describes_a_manifest_file(chain: Path, cli: Callable[..., Result]) -> None:
    r = cli("inspect", CLEAN)
    assert r.code == 0, r.err
    assert f"{CLEAN}: dataset manifest" in r.out and "signature: none" in r.out
    assert f"members: {MEMBERS}" in r.out and f"sha256: {sha256(CLEAN)}" in r.out
    doc = json.loads(cli("inspect", CLEAN, "--json").out)
    (described,) = doc["documents"]
    assert described["fields"]["bytes"] == total_bytes("data/clean")
    # A manifest cut short is refused by name (exit 3), like any malformed input.
    Path("cut.manifest").write_bytes(Path(CLEAN).read_bytes().rsplit(b"#end", 1)[0])
    r = cli("inspect", "cut.manifest")
    assert r.code == 3 and "cut.manifest" in r.err and len(r.err.strip().splitlines()) == 1


def test_an_s3_dataset_is_traced_by_its_prefix() -> None:
    from provenance.report import trace
    from provenance.report._trace import LinkRecord

    manifest, sha = ".provenance/datasets/corpus_v3-1a2b3c4d.manifest", "d" * 64
    env = {
        "datasets": {
            "products": {
                manifest: {"source": "s3://corpus/v3", "kind": "s3", "members": 10**7, "bytes": 5}
            }
        }
    }
    record = LinkRecord(
        "ingest", "ingest.abcd.link", "abcd", (), {}, {manifest: sha},
        tuple(recorded_datasets(env, {}, {manifest: sha})),
    )  # fmt: skip
    lineage = trace("s3://corpus/v3/", [record], verified=True, source="verified")
    (root,) = lineage.roots
    assert (root.path, root.sha256, root.step) == (manifest, sha, "ingest")
    assert root.to_dict()["dataset"]["members"] == 10**7
    assert trace("s3://corpus/v4", [record], verified=True, source="verified").roots == []
