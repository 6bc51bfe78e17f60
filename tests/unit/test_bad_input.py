"""Malformed layouts, patterns and keys: exit 3, one line naming the file and the problem, no
traceback, fast, and nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provenance.errors import LayoutError, PatternError
from provenance.layout import load_yaml
from provenance.record import StepSpec
from tests.conftest import snapshot
from tests.unit.test_fs import hang_guard

GOOD = Path(__file__).resolve().parents[2] / "layouts" / "train.yaml"


def one_line_refusal(r, code: int, *words: str) -> None:
    assert r.code == code, (r.code, r.out, r.err)
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1, r.err
    for w in words:
        assert w in r.err, (w, r.err)


def write_layout(project: Path, text: str) -> str:
    path = project / "layouts" / "bad.yaml"
    path.write_text(text)
    return "layouts/bad.yaml"


def with_threshold(value: str) -> str:
    text = GOOD.read_text()
    assert "    threshold: 1\n" in text
    return text.replace("    threshold: 1\n", f"    threshold: {value}\n", 1)


# -- YAML: refused fast, by the loader, before anything is built -----------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[" * 200_000 + "]" * 200_000, "nested deeper than"),
        ("{a: " * 100_000 + "1" + "}" * 100_000, "nested deeper than"),
        ("".join("  " * i + "-\n" for i in range(500)), "nested deeper than"),
        ("".join(" " * i + f"k{i}:\n" for i in range(400)), "nested deeper than"),
        ("[" + "1, " * 30_000 + "1]", "YAML nodes"),
        ("x: " + "a" * (1 << 20), "larger than"),
    ],
    ids=["flow-lists", "flow-maps", "block-lists", "block-maps", "many-nodes", "big-file"],
)
def test_deep_or_huge_yaml_is_refused_fast(project: Path, cli, text: str, words: str) -> None:
    path = write_layout(project, text)
    before = snapshot(project)
    with hang_guard(30):  # before the fix the deep cases ran for minutes
        with pytest.raises(LayoutError, match=words):
            load_yaml(path)
        r = cli("layout", "sign", path, "--key", "keys/owner", "-o", "root.layout")
    one_line_refusal(r, 3, path, words)
    assert snapshot(project) == before


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("    threshold: 1\n", "    threshold: " + "9" * 200_000 + "\n", "is too large"),
        ("    threshold: 1\n", "    threshold: 0x" + "f" * 200_000 + "\n", "is too large"),
        ("    threshold: 1\n", "    threshold: " + "1:" * 50_000 + "1\n", "is too large"),
        ("    threshold: 1\n", "    threshold: 99999999999999999999\n", "is too large"),
        ("expires: 180d", "expires: 0000-01-01", "out of range"),
        ("expires: 180d", "expires: 2027-13-45", "must be in 1..12"),
        ("expires: 180d", "expires: 2027-01-01T00:00:00+99:00", "expires: invalid value"),
        ("expires: 180d", "expires: 9999-12-31T23:59:59-05:00", "out of range"),
        ("expires: 180d", "expires: 999999y", "out of range"),
        ("expires: 180d", "expires: 9999999999999999999999d", "expires must be a date"),
    ],
    ids=[
        "int-200k-digits",
        "hex-int",
        "sexagesimal-int",
        "int-20-digits",
        "year-0",
        "month-13",
        "offset-99h",
        "date-overflows-utc",
        "duration-overflows",
        "duration-digits",
    ],
)
def test_absurd_numbers_and_dates_are_refused(
    project: Path, cli, old: str, new: str, words: str
) -> None:
    text = GOOD.read_text()
    assert old in text
    path = write_layout(project, text.replace(old, new, 1))
    before = snapshot(project)
    with hang_guard(30):
        r = cli("layout", "sign", path, "--key", "keys/owner", "-o", "root.layout")
    one_line_refusal(r, 3, f"{path}:", words)
    assert snapshot(project) == before


def test_expiry_with_an_offset_is_recorded_in_utc(project: Path) -> None:
    text = GOOD.read_text().replace("expires: 180d", "expires: 2031-01-01T03:00:00+05:00")
    spec = load_yaml(write_layout(project, text))
    assert spec.expires is not None
    assert spec.expires.strftime("%Y-%m-%dT%H:%M:%SZ") == "2030-12-31T22:00:00Z"


# -- glob patterns: refused at layout load and at step declaration ---------------------------------

BAD_PATTERNS = [
    ("[!]", "empty character class"),
    ("[]", "empty character class"),
    ("data/[abc", "never closed"),
    ("data/a]b", "closes no '['"),
    ("models/[z-a]*", "reversed range"),
    ("data/[a/b]", "may not hold"),
]


@pytest.mark.parametrize(("pattern", "words"), BAD_PATTERNS, ids=[p for p, _ in BAD_PATTERNS])
def test_invalid_rule_pattern_is_refused_at_layout_load(
    project: Path, cli, pattern: str, words: str
) -> None:
    text = GOOD.read_text().replace('- allow: "data/raw/*"', f"- allow: '{pattern}'", 1)
    path = write_layout(project, text)
    line = text.splitlines().index(f"      - allow: '{pattern}'") + 1
    r = cli("layout", "lint", path)
    one_line_refusal(r, 3, f"{path}:{line}:", repr(pattern), words)


def test_nul_in_a_rule_pattern_or_prefix_is_refused(project: Path) -> None:
    text = GOOD.read_text().replace('- allow: "data/raw/*"', '- allow: "data/\\0raw"', 1)
    with pytest.raises(LayoutError, match="contains NUL"):
        load_yaml(write_layout(project, text))
    text = GOOD.read_text().replace(
        '      - match: "models/*"\n        from: train',
        '      - match: "models/*"\n        from: train\n        in: "a\\0b"',
        1,
    )
    with pytest.raises(LayoutError, match="'in' prefix contains NUL"):
        load_yaml(write_layout(project, text))


@pytest.mark.parametrize(("pattern", "words"), BAD_PATTERNS, ids=[p for p, _ in BAD_PATTERNS])
def test_invalid_step_pattern_is_refused_before_the_command_runs(
    project: Path, cli, pattern: str, words: str
) -> None:
    before = snapshot(project)
    r = cli("run", "train", "-m", pattern, "--key", "keys/trainer", "--", "touch", "ran")
    one_line_refusal(r, 3, repr(pattern), words)
    assert not Path("ran").exists() and snapshot(project) == before


@pytest.mark.parametrize("pattern", ["", "   ", "data/\x00x"])
def test_empty_or_nul_step_pattern_is_refused_when_declared(pattern: str) -> None:
    with pytest.raises(PatternError, match="invalid pattern") as err:
        StepSpec("train", materials=[pattern])
    assert err.value.exit_code == 3


def test_invalid_exclude_pattern_is_refused(project: Path, cli) -> None:
    r = cli("run", "s", "-m", "data", "--exclude", "[!]", "--key", "keys/trainer", "--", "true")
    one_line_refusal(r, 3, "invalid exclude pattern '[!]'")


def test_valid_classes_still_match(tmp_path: Path) -> None:
    from provenance.hashing import hash_artifacts

    for name in ("a1", "b2", "c3", "-x", "!y"):
        (tmp_path / name).write_text(name)
    assert sorted(hash_artifacts(tmp_path, ["[ab][0-9]"]).digests) == ["a1", "b2"]
    assert sorted(hash_artifacts(tmp_path, ["[!ab]?"]).digests) == ["!y", "-x", "c3"]
    assert sorted(hash_artifacts(tmp_path, ["[-!]?"]).digests) == ["!y", "-x"]


# -- keys ------------------------------------------------------------------------------------------


def test_public_key_given_as_signing_key_says_so(project: Path, cli) -> None:
    assert oct(os.stat("keys/trainer.pub").st_mode & 0o777) == "0o644"
    r = cli("run", "s", "--key", "keys/trainer.pub", "--", "true")
    one_line_refusal(r, 3, "keys/trainer.pub: is a public key; a private key is needed")
    assert "too open" not in r.err
    r = cli("layout", "sign", "layouts/train.yaml", "--key", "keys/owner.pub", "-o", "x.layout")
    one_line_refusal(r, 3, "keys/owner.pub: is a public key")
    assert not Path("x.layout").exists()


@pytest.mark.parametrize(
    "content",
    [
        b"-----BEGIN PRIVATE KEY-----\nnot base64 !!\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n",
        b"-----BEGIN PRIVATE KEY-----\n" + b"A" * 60_000 + b"\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA==\n-----END EC PRIVATE KEY-----\n",
        b"\x00\xff" * 100,
        b"",
    ],
    ids=["bad-base64", "truncated", "long-garbage", "bad-ec", "binary", "empty"],
)
def test_malformed_private_key_is_one_line(project: Path, cli, content: bytes) -> None:
    Path("keys/bad").write_bytes(content)
    os.chmod("keys/bad", 0o600)
    r = cli("run", "s", "--key", "keys/bad", "--", "touch", "ran")
    one_line_refusal(r, 3, "keys/bad:", "private key")
    assert not Path("ran").exists()


@pytest.mark.parametrize(
    "content",
    [
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN PUBLIC KEY-----\n",
        b"\xff\xfe",
    ],
    ids=["bad-der", "truncated", "binary"],
)
def test_malformed_public_key_is_one_line(project: Path, cli, content: bytes) -> None:
    Path("keys/bad.pub").write_bytes(content)
    r = cli("verify", "--layout", "root.layout", "--layout-key", "keys/bad.pub")
    one_line_refusal(r, 3, "keys/bad.pub:", "public key")


def test_key_that_is_a_fifo_is_refused_without_hanging(project: Path, cli) -> None:
    os.mkfifo("keys/pipe", 0o600)
    with hang_guard():
        r = cli("run", "s", "--key", "keys/pipe", "--", "true")
    one_line_refusal(r, 3, "keys/pipe:", "not a regular file (a FIFO)")


def test_layout_or_link_that_is_a_fifo_is_refused_without_hanging(project: Path, cli) -> None:
    os.mkfifo("root.layout")
    with hang_guard():
        r = cli("verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub")
        one_line_refusal(r, 3, "root.layout:", "not a regular file (a FIFO)")
        os.mkfifo("layouts/pipe.yaml")
        r = cli("layout", "lint", "layouts/pipe.yaml")
        one_line_refusal(r, 3, "layouts/pipe.yaml:", "not a regular file (a FIFO)")


@pytest.mark.parametrize("value", [None, ""])
def test_a_stack_demo_job_started_by_hand_names_the_missing_setting(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    """A demo job reads its object-store prefix and run id from the environment the demo
    gives it; started any other way it says which one is missing (exit 2), no KeyError."""
    from provenance._demo_stack import PREFIX_ENV, _job_setting
    from provenance.errors import UsageError

    if value is None:
        monkeypatch.delenv(PREFIX_ENV, raising=False)
    else:
        monkeypatch.setenv(PREFIX_ENV, value)
    with pytest.raises(UsageError, match=f"{PREFIX_ENV} is not set: a demo job runs inside") as e:
        _job_setting(PREFIX_ENV)
    assert e.value.exit_code == 2
    monkeypatch.setenv(PREFIX_ENV, "s3://bucket/run/")
    assert _job_setting(PREFIX_ENV) == "s3://bucket/run/"
