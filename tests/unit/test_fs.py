"""provenance._fs: bounded reads and JSON, atomic writes, output guard, canonical JSON, UTC."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provenance._fs import (
    MAX_JSON_DEPTH,
    canonical_json,
    check_output,
    check_output_dir,
    load_json_bounded,
    load_json_plain,
    parse_utc,
    read_bounded,
    utc_now,
    write_atomic,
)
from provenance.errors import InputError, LinkFormatError, OutputError, UsageError


@contextmanager
def hang_guard(seconds: int = 20) -> Iterator[None]:
    """Fail (instead of blocking the suite) if the body does not return: a hang is the bug."""

    def fire(*_: object) -> None:
        raise AssertionError(f"did not finish within {seconds} s: it hangs")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# -- load_json_bounded: absurd JSON is a typed error naming the file -------------------------------


@pytest.mark.parametrize(
    ("blob", "words"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nested deeper"),
        (b'{"a":' * 70 + b"1" + b"}" * 70, "nested deeper"),
        (b"[" + b"9" * 100_000 + b"]", "integer"),
        (b'{"n": 9223372036854775808}', "integer"),
        (b'{"n": -9223372036854775808}', "integer"),
        (b'{"n": NaN}', "NaN"),
        (b'{"n": Infinity}', "Infinity"),
        (b'{"n": -Infinity}', "Infinity"),
        (b'{"n": 1e999}', "out of range"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b'{"p": "\\ud800"}', "surrogate"),
        (b'{"p": "x\\udc00"}', "surrogate"),
        (b"\xff\xfe{}", "not UTF-8"),
        ('{"a":1}'.encode("utf-16"), "not UTF-8"),
        (b'{"a": ', "not JSON ("),
        (b"", "not JSON ("),
    ],
    ids=[
        "deep-100k",
        "deep-limit+1",
        "deep-objects",
        "int-100k-digits",
        "int-2**63",
        "int--2**63",
        "nan",
        "infinity",
        "-infinity",
        "float-overflow",
        "duplicate-key",
        "lone-high-surrogate",
        "lone-low-surrogate",
        "not-utf8",
        "utf16",
        "truncated",
        "empty",
    ],
)
def test_absurd_json_is_refused_with_the_file_named(blob: bytes, words: str) -> None:
    with hang_guard(), pytest.raises(LinkFormatError) as err:
        load_json_bounded(blob, "links/train.abcd1234.link", what="link", error=LinkFormatError)
    text = str(err.value)
    assert text.startswith("links/train.abcd1234.link: ")
    assert words in text and "\n" not in text


def test_reasonable_json_passes_unchanged() -> None:
    doc = {
        "materials": {"data/ü 😀.csv": {"sha256": "0" * 64}},
        "n": [9223372036854775807, -9223372036854775807, 1.5, None, True],
        "deep": json.loads("[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)),
        "brackets in strings": "[[[[{{{{" * 100,
        "escaped": 'quote " backslash \\ ] }',
    }
    for blob in (canonical_json(doc), json.dumps(doc, ensure_ascii=False).encode()):
        assert load_json_bounded(blob, "x.json") == doc


def test_duplicate_keys_can_be_allowed_for_speed() -> None:
    assert load_json_bounded(b'{"a": 1, "a": 2}', "x", unique_keys=False) == {"a": 2}


def test_canonical_json_is_sorted_compact_ascii_and_refuses_nan() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == b'{"a":"\\u00e9","b":1}'
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


# -- time ------------------------------------------------------------------------------------------


def test_utc_now_round_trips_through_parse_utc() -> None:
    now = utc_now()
    parsed = parse_utc(now)
    assert parsed.tzinfo == dt.timezone.utc and parsed.strftime("%Y-%m-%dT%H:%M:%SZ") == now


@pytest.mark.parametrize("text", ["2027-13-01T00:00:00Z", "2027-01-01", "0000-01-01T00:00:00Z", ""])
def test_parse_utc_refuses_malformed_times_with_the_source_named(text: str) -> None:
    with pytest.raises(InputError, match=r"^root.layout: invalid UTC time"):
        parse_utc(text, "root.layout")


# -- read_bounded ----------------------------------------------------------------------------------


def test_read_bounded_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "layout.yaml"
    os.mkfifo(fifo)
    with hang_guard(), pytest.raises(InputError, match="is not a regular file \\(a FIFO\\)"):
        read_bounded(str(fifo), 1024, "layout")


def test_read_bounded_refuses_a_device_and_an_oversized_file(tmp_path: Path) -> None:
    with hang_guard(), pytest.raises(InputError, match="/dev/zero: key is not a regular file"):
        read_bounded("/dev/zero", 1024, "key")
    big = tmp_path / "big"
    big.write_bytes(b"x" * 1025)
    with pytest.raises(InputError, match="larger than 1024 bytes"):
        read_bounded(str(big), 1024)
    assert read_bounded(str(big), 1025) == b"x" * 1025


# -- write_atomic ----------------------------------------------------------------------------------


def test_write_atomic_into_an_unwritable_place_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write") as err:
        write_atomic(tmp_path / "file" / "out.json", b"{}")
    assert err.value.exit_code == 2 and isinstance(err.value, UsageError)
    with pytest.raises(OutputError, match="cannot write"):
        write_atomic(tmp_path, b"{}")  # a directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no temp file left


def test_write_atomic_without_overwrite_never_replaces(tmp_path: Path) -> None:
    target = tmp_path / "RUN_ID"
    target.write_text("first")
    with pytest.raises(FileExistsError):
        write_atomic(target, b"second", overwrite=False)
    assert target.read_text() == "first"


# -- check_output ----------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "notes.txt").write_text("not a key")
    (tmp_path / "in.yaml").write_text("steps: []")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "owner").write_bytes(
        b"-----BEGIN PRIVATE KEY-----\nMC4=\n-----END PRIVATE KEY-----\n"
    )
    return tmp_path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: "in.yaml", "an input of this command"),
        (lambda: "./sub/../in.yaml", "an input of this command"),
        (lambda: os.symlink("in.yaml", "link.yaml") or "link.yaml", "an input of this command"),
        (lambda: os.link("in.yaml", "hard.yaml") or "hard.yaml", "an input of this command"),
        (lambda: "keys/notes.txt", "keys directory"),
        (lambda: "elsewhere/owner", "key file"),
        (lambda: "elsewhere", "is a directory"),
        (lambda: "in.yaml/out", "not a directory"),
        (lambda: "", "needs a file name"),
    ],
    ids=[
        "same-path",
        "dotdot-path",
        "symlink",
        "hard-link",
        "keys-dir",
        "pem-key",
        "directory",
        "parent-is-file",
        "empty",
    ],
)
def test_output_over_an_input_or_key_is_refused(files: Path, make, words: str) -> None:
    (files / "sub").mkdir()
    output = make()
    before = {p: p.read_bytes() for p in files.rglob("*") if p.is_file()}
    with pytest.raises(OutputError, match=words) as err:
        check_output(output, ["in.yaml"])
    assert err.value.exit_code == 2
    assert {p: p.read_bytes() for p in files.rglob("*") if p.is_file()} == before


def test_output_elsewhere_is_accepted(files: Path) -> None:
    check_output("root.layout", ["in.yaml"])
    check_output("new/dir/root.layout", ["in.yaml"])
    (files / "root.layout").write_text("old signed layout")
    check_output("root.layout", ["in.yaml"])  # re-signing replaces the previous output


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: (p / "f").write_text("x") and "f", "not a directory"),
        (lambda p: os.symlink(p / "elsewhere", "ln") or "ln", "symlink"),
        (lambda p: "elsewhere", "not empty"),
        (lambda p: "in.yaml/dest", "not a directory"),
        (lambda p: "", "needs a directory name"),
    ],
    ids=["file", "symlink", "non-empty", "parent-is-file", "empty"],
)
def test_odd_fetch_destination_is_refused(files: Path, make, words: str) -> None:
    with pytest.raises(OutputError, match=words):
        check_output_dir(make(files))
    check_output_dir("fresh/serving")
    (files / "empty").mkdir()
    check_output_dir("empty")


@pytest.mark.parametrize(
    "blob",
    [
        b'{"payload": "", "payloadType": "x", "signatures": [], "n": ' + b"9" * 5000 + b"}",
        b'{"payload": "", "payloadType": "x", "signatures": [], "n": NaN}',
        b'{"payload": "", "payloadType": "x", "signatures": [], "payload": "AA=="}',
        b'{"payload": "", "payloadType": "x", "signatures": [' + b"[" * 200 + b"]" * 200 + b"]}",
    ],
    ids=["huge-int", "nan", "duplicate-payload", "deep"],
)
def test_envelope_and_provenance_with_absurd_json_are_refused(tmp_path: Path, blob: bytes) -> None:
    from provenance.attest.slsa._formats import load
    from provenance.signing import dsse

    with pytest.raises(InputError, match=r"^train\.abcd1234\.link: link "):
        dsse.parse(blob, "train.abcd1234.link", "link")
    path = tmp_path / "model.intoto.jsonl"
    path.write_bytes(blob + b"\n" + blob)
    with pytest.raises(InputError, match=r"model\.intoto\.jsonl"):
        load(str(path))


@pytest.mark.parametrize(
    "blob",
    [
        b'{"a": {"b": 1, "b": 2}}',
        b'[{"x": 1}, {"y": 1, "y": 1}]',
        b'{"k:\\"{[": 1, "k:\\"{[": 2}',
        b'{"s\\\\": "a\\\\", "s\\\\": "b:"}',
        b'{"a": 1, "\\u0061": 2}',
        b'{"m": {"p/\\u00e4": {"sha256": "0"}, "p/\\u00e4": {"sha256": "1"}}}',
        b'{"":1,"":2}',
    ],
    ids=[
        "nested",
        "in-array",
        "colon-quote-bracket",
        "backslashes",
        "escaped-twin",
        "artifacts",
        "empty",
    ],
)
def test_duplicate_keys_anywhere_are_refused(blob: bytes) -> None:
    with pytest.raises(LinkFormatError, match="duplicate key"):
        load_json_bounded(blob, "links/x.link", what="link", error=LinkFormatError)


def test_strings_full_of_json_syntax_are_not_mistaken_for_keys() -> None:
    doc = {
        "a:b": "c:d",
        "": "",
        "q": 'say "x": {"y": [1]}',
        "bs\\": "ends with a backslash\\",
        "uni": "\u00e4:\u00f6",
        "list": ["k:", {"k": ":"}, [":", '\\"']],
        "nl": "line\nbreak:",
    }
    for blob in (canonical_json(doc), json.dumps(doc, ensure_ascii=False, indent=1).encode()):
        assert load_json_bounded(blob, "x.json") == doc


@settings(max_examples=1500, deadline=None)
@given(
    st.lists(
        st.sampled_from(["\\\\", "\\ud800", "\\udc00", "\\ud83d", "\\ude00", "ud800", "a", "\\n"])
    )
)
def test_lone_surrogates_are_refused_exactly_when_the_parsed_text_holds_one(
    parts: list[str],
) -> None:
    """Escaped backslashes next to surrogate escapes (`\\\\ud800\\udc00`) are not pairs."""
    text = ('["' + "".join(parts) + '"]').encode()
    lone = any(0xD800 <= ord(c) <= 0xDFFF for c in json.loads(text)[0])
    try:
        load_json_bounded(text, "x.json")
        refused = False
    except InputError:
        refused = True
    assert refused == lone
    assert (load_json_plain(text, lambda doc: 0) is None) or not lone


@settings(max_examples=1500, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                '"a":',
                '{"sha256":"' + "ab" * 32 + '"}',
                ",",
                "{",
                "}",
                '"',
                "\\",
                "\\ud800",
                "NaN",
                "1e999",
                "12345678901234567890123",
                " ",
                "\\u00e9",
                "\u00e9",
                "<FF>",
                "[",
                "]",
                "null",
            ]
        ),
        max_size=12,
    )
)
def test_plain_parsing_does_not_depend_on_orjson(parts: list[str]) -> None:
    """orjson (large sections) and json.loads give the same result or both refuse."""
    from provenance import _fs

    text = ("{" + "".join(parts) + "}").encode("utf-8", "surrogateescape")
    text = text.replace(b"<FF>", b"\xff")  # an invalid UTF-8 byte

    def count(doc: object) -> int | None:  # objects and strings only, as the contract says
        if isinstance(doc, str):
            return 0
        if not isinstance(doc, dict):
            return None
        inner = [count(v) for v in doc.values()]
        return None if None in inner else len(doc) + sum(c for c in inner if c is not None)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(_fs, "_ORJSON_FROM", 0)
        fast = load_json_plain(text, count)
        m.setattr(_fs, "_orjson", lambda: None)
        slow = load_json_plain(text, count)
    assert fast == slow
