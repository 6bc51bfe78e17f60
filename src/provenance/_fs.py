"""Small shared helpers for files and formats that every layer uses the same way.

Untrusted input is read with a size bound and parsed with a depth and number bound; outputs are
written atomically and never over one of the command's own inputs or a key; JSON that is signed
is serialised one way; times are UTC with one format.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Callable, Generator, Iterable
from typing import Any

from provenance.errors import InputError, OutputError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
"""Step, inspection and key names: safe in file names and in messages."""

UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

MAX_JSON_DEPTH = 64  # in-toto links and SLSA statements nest 5-8 levels
MAX_INT = 2**63  # no field of a link or statement needs more than a 64-bit integer

_KEY_MARKERS = (b"PRIVATE KEY-----", b"PUBLIC KEY-----")


# -- reading -------------------------------------------------------------------------------------


def read_bounded(
    path: str, limit: int, what: str = "file", error: type[InputError] = InputError
) -> bytes:
    """The bytes of `path`, refusing files over `limit` bytes (never reads more than limit+1).

    Only regular files are read: a FIFO, socket or device given as input is refused by name
    without blocking on it (opened non-blocking, checked with fstat before any read).
    """
    fd = _open_regular(path, what, error)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise error(path, f"cannot read {what}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(path, f"{what} is larger than {limit} bytes")
    return data


def read_chunks(
    path: str, limit: int, chunk: int, what: str = "file", error: type[InputError] = InputError
) -> Generator[bytes, None, None]:
    """`read_bounded`, a chunk at a time: the whole file is never in memory at once."""
    fd = _open_regular(path, what, error)
    total = 0
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            while piece := f.read(chunk):
                total += len(piece)
                if total > limit:
                    raise error(path, f"{what} is larger than {limit} bytes")
                yield piece
    except OSError as exc:
        raise error(path, f"cannot read {what}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _open_regular(path: str, what: str, error: type[InputError]) -> int:
    """A blocking descriptor of `path`, refused by name unless it is a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(path, f"{what} not found") from None
    except IsADirectoryError:
        raise error(path, f"{what} is a directory") from None
    except OSError as exc:
        raise error(path, f"cannot read {what}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise error(path, f"{what} is a directory")
        if not stat.S_ISREG(mode):
            raise error(path, f"{what} is not a regular file ({_kind(mode)})")
        os.set_blocking(fd, True)
    except OSError as exc:
        os.close(fd)
        raise error(path, f"cannot read {what}: {exc.strerror}") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def special_kind(mode: int) -> str:
    """'a FIFO', 'a socket', 'a device', 'a symlink', ... for messages about `mode`."""
    return _kind(mode)


class _JSONRefused(ValueError):
    pass


def _parse_int(text: str) -> int:
    # Checked on the text: int() of a 100k-digit literal is itself slow (and limited in 3.11+).
    if len(text.lstrip("-")) > 19 or abs(value := int(text)) >= MAX_INT:
        raise _JSONRefused(f"integer {text[:20]}... is too large")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _JSONRefused(f"number {text[:20]} is out of range")
    return value


def _parse_constant(text: str) -> Any:
    raise _JSONRefused(f"{text} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _JSONRefused(f"duplicate key '{key[:60]}'")
            seen.add(key)
    return out


_QUOTE_COLON = bytes(b for b in range(256) if b not in b'":')
_STRING = re.compile(rb'"[^"]*"')  # once escapes are gone, a string holds no quote
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # cheap test before _LONE_SURROGATE


def _lone_surrogate(data: bytes) -> bool:
    r"""Valid JSON `data` escapes a UTF-16 surrogate that is not half of a pair.

    Escaped backslashes are blanked first (pairs taken left to right, as JSON does; blanked,
    not removed, so no escapes become neighbours): in `\\ud800\udc00` the text `\ud800` is a
    backslash and five letters, not the high half of a pair.
    """
    if not _SURROGATE_ESCAPE.search(data):
        return False
    if b"\\\\" in data:
        data = data.replace(b"\\\\", b"__")
    return _LONE_SURROGATE.search(data) is not None


def _keys_in_text(data: bytes) -> int:
    """How many object keys valid JSON `data` spells out: its colons outside strings.

    At C speed: escaped backslashes go first, then escaped quotes (pairs are taken left to
    right, as JSON does, so an escaped quote never ends a string); then everything but quotes
    and colons; then the strings with what is left of their contents (`""` first: nearly all).
    """
    if b"\\" in data:  # one byte: a memchr scan, unlike replace's search for two
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    text = data.translate(None, _QUOTE_COLON).replace(b'""', b"")
    if b'"' in text:
        text = _STRING.sub(b"", text)
    return len(text)


def _shape(doc: Any) -> tuple[int, int]:
    """(nesting depth of containers, key/value pairs of all objects) of a parsed document.

    Level by level, in C where it counts (a 300k-artifact link: a small fraction of
    json.loads' own time): the values of a level are gathered with chain/map, and only a level
    that holds containers is filtered in Python.
    """
    depth = entries = 0
    dicts, lists = ([doc], []) if type(doc) is dict else ([], [doc] if type(doc) is list else [])
    while dicts or lists:
        depth += 1
        entries += sum(map(len, dicts))
        values = list(
            itertools.chain(
                itertools.chain.from_iterable(map(dict.values, dicts)),
                itertools.chain.from_iterable(lists),
            )
        )
        kinds = set(map(type, values))
        dicts = [v for v in values if type(v) is dict] if dict in kinds else []
        lists = [v for v in values if type(v) is list] if list in kinds else []
    return depth, entries


def load_json_bounded(
    data: bytes | str,
    path: str,
    *,
    what: str = "JSON",
    max_depth: int = MAX_JSON_DEPTH,
    unique_keys: bool = True,
    error: type[InputError] = InputError,
) -> Any:
    """Parse untrusted JSON; anything absurd is `error(path, ...)`, never another exception.

    Refused: invalid UTF-8 or JSON, nesting deeper than `max_depth`, integers of 2**63 or more,
    NaN/Infinity and floats that overflow, lone UTF-16 surrogate escapes (not Unicode: they
    break every later encode), and with `unique_keys` duplicate object keys (another parser may
    keep the other value). Callers bound the size of `data` when they read it.

    Duplicate keys are found without a per-object hook: every key in the text is followed by a
    colon outside strings, so the text holds duplicates exactly when it has more such colons
    than the parsed objects have entries; only then is it parsed again to name the key.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise error(path, f"{what} is not UTF-8") from None
    try:
        doc = _loads(text, None)
    except _JSONRefused as exc:
        raise error(path, f"{what} refused: {exc}") from None
    except RecursionError:
        raise error(path, f"{what} is nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise error(path, f"{what} is not JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError as exc:  # e.g. a lone surrogate the decoder rejects
        raise error(path, f"{what} is not JSON ({exc})") from None
    raw = data if isinstance(data, bytes) else text.encode("utf-8", "surrogatepass")
    del text
    if _lone_surrogate(raw):
        raise error(path, f"{what} refused: a string holds a lone UTF-16 surrogate escape")
    depth, entries = _shape(doc)
    if depth > max_depth:
        raise error(path, f"{what} is nested deeper than {max_depth} levels")
    if unique_keys and _keys_in_text(raw) != entries:
        try:
            _loads(raw.decode("utf-8", "surrogatepass"), _unique_keys)
        except _JSONRefused as exc:
            raise error(path, f"{what} refused: {exc}") from None
        raise error(path, f"{what} refused: duplicate keys")  # pragma: no cover - found above
    return doc


def load_json_plain(data: bytes, entries: Callable[[Any], int | None]) -> Any | None:
    """`data` parsed when it is plainly acceptable; otherwise None (then `load_json_bounded`).

    For parts of a document whose shape the caller knows: `entries(doc)` returns how many
    key/value pairs `doc` holds once it has checked the shape (which bounds its depth), or None
    when the shape is not the expected one. The shape must hold only objects and strings:
    numbers are where the two parsers used here differ (orjson reads a huge integer as a
    float). Everything else `load_json_bounded` refuses makes this return None too: invalid
    UTF-8 or JSON, NaN, lone surrogates, duplicate keys; the caller then takes
    `load_json_bounded`, which names the problem.
    """
    try:
        doc = _plain_loads(data)
    except (ValueError, RecursionError):  # JSONDecodeError, _JSONRefused, UnicodeDecodeError
        return None
    if _lone_surrogate(data):
        return None
    count = entries(doc)
    return doc if count is not None and count == _keys_in_text(data) else None


def _plain_loads(data: bytes) -> Any:
    """`data` parsed by orjson when it is installed (1.6x faster on link artifact sections).

    Only a refusal may differ from `json.loads` (orjson also refuses NaN, lone surrogates,
    infinite floats), and any refusal sends the caller to `load_json_bounded`; what orjson
    accepts, the plain-shape check narrows to strings, where both parse RFC 8259 identically.
    """
    fast = _orjson() if len(data) >= _ORJSON_FROM else None
    return _loads(data.decode("utf-8"), None) if fast is None else fast.loads(data)


# Importing orjson costs ~18 ms: below this size json.loads is done sooner.
_ORJSON_FROM = 1 << 20


@functools.cache
def _orjson() -> Any:
    """The orjson module, or None where it is not installed (the standard library then)."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - tests replace this function to take that path
        return None
    return orjson


def _loads(text: str, hook: Any) -> Any:
    return json.loads(
        text,
        parse_int=_parse_int,
        parse_float=_parse_float,
        parse_constant=_parse_constant,
        object_pairs_hook=hook,
    )


def canonical_json(value: Any) -> bytes:
    """The one serialisation of signed JSON: sorted keys, no spaces, ASCII, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


# -- time ----------------------------------------------------------------------------------------


def utc_now() -> str:
    """Now, as the UTC timestamp links, layouts and statements record (second precision)."""
    return dt.datetime.now(dt.timezone.utc).strftime(UTC_FORMAT)


def parse_utc(
    text: str, where: str | None = None, error: type[InputError] = InputError
) -> dt.datetime:
    """An aware datetime from `YYYY-MM-DDTHH:MM:SSZ`; anything else is `error(where, ...)`."""
    try:
        return dt.datetime.strptime(text, UTC_FORMAT).replace(tzinfo=dt.timezone.utc)
    except (TypeError, ValueError):
        shown = text[:40] if isinstance(text, str) else type(text).__name__
        raise error(where, f"invalid UTC time '{shown}' (expected YYYY-MM-DDTHH:MM:SSZ)") from None


# -- writing -------------------------------------------------------------------------------------


def write_atomic(
    path: str | os.PathLike[str],
    data: bytes | Iterable[bytes],
    *,
    mode: int = 0o644,
    overwrite: bool = True,
) -> None:
    """Write `data` to `path` via a temp file in the same directory and rename/link it in place.

    `data` may come in pieces (an iterable of bytes), so a large file is never one buffer.
    A reader sees the old file or the whole new one, never a partial write. With
    `overwrite=False` an existing file is never replaced (FileExistsError), also under races.
    Any other failure is an OutputError naming `path`, and leaves nothing behind.
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    except OSError as exc:
        raise OutputError(path, f"cannot write: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, bytes | bytearray | memoryview):
                f.write(data)
            else:
                try:
                    for piece in data:
                        f.write(piece)
                finally:
                    # A generator (a link's signed pieces) cleans up now, not when collected.
                    close = getattr(data, "close", None)
                    if close is not None:
                        close()
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails with FileExistsError instead of clobbering
    except FileExistsError:
        raise
    except OSError as exc:
        raise OutputError(path, f"cannot write: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


def is_key_file(path: str) -> bool:
    """A regular file holding a PEM key (read without blocking on FIFOs or devices)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        head = os.read(fd, 64 * 1024)
    except OSError:
        return False
    finally:
        os.close(fd)
    return any(marker in head for marker in _KEY_MARKERS)


def check_output(
    output: str,
    inputs: Iterable[str] = (),
    *,
    key_dirs: Iterable[str] = ("keys",),
    option: str = "-o",
) -> None:
    """Refuse (OutputError, exit 2) an output that would replace an input or a key.

    The output is compared with every input by real path and by (device, inode), so symlinks
    and hard links to an input are caught; an existing PEM key anywhere, or any existing file in
    one of `key_dirs`, is refused too. Directories and unwritable places are refused up front so
    a long command does not fail at its very end.
    """
    if not output or "\x00" in output:
        raise OutputError(output or "''", f"{option} needs a file name")
    real = os.path.realpath(output)
    ident = _identity(output)
    for item in inputs:
        if os.path.realpath(item) == real or (ident is not None and _identity(item) == ident):
            raise OutputError(output, f"{option} would overwrite {item}, an input of this command")
    if os.path.isdir(real):
        raise OutputError(output, f"{option} is a directory")
    if ident is not None or os.path.islink(output):
        for key_dir in key_dirs:
            kd = os.path.realpath(key_dir)
            if real.startswith(kd.rstrip(os.sep) + os.sep) and os.path.isdir(kd):
                raise OutputError(
                    output, f"{option} would overwrite a file in the keys directory {key_dir}"
                )
        if is_key_file(real):
            raise OutputError(output, f"{option} would overwrite a key file")
    _check_writable(output, os.path.dirname(real), option)


def _check_writable(output: str, parent: str, option: str) -> None:
    existing = parent
    while existing and not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if existing and not os.path.isdir(existing):
        raise OutputError(output, f"cannot write {option}: {existing} is not a directory")
    if existing and not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(output, f"cannot write {option}: no write permission in {existing}")


def check_writable_dir(path: str, what: str, shown: str | None = None) -> None:
    """Refuse (OutputError) a directory that is not one or cannot be created or written."""
    shown = shown or path
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OutputError(shown, f"{what} is not a directory")
    _check_writable(shown, path, what)


def check_output_dir(dest: str, option: str = "DEST", *, replace: bool = False) -> None:
    """Refuse a destination directory that cannot be created cleanly (OutputError, exit 2).

    It must be absent or an empty real directory (not a symlink, which would redirect the
    files elsewhere), and its parent must be a writable directory. With `replace`, a non-empty
    directory is accepted (the caller swaps it out only after its own checks).
    """
    if not dest or "\x00" in dest:
        raise OutputError(dest or "''", f"{option} needs a directory name")
    if os.path.islink(dest):
        raise OutputError(dest, f"{option} is a symlink; give a real directory")
    if os.path.lexists(dest):
        if not os.path.isdir(dest):
            raise OutputError(dest, f"{option} exists and is not a directory")
        try:
            if os.listdir(dest) and not replace:
                raise OutputError(dest, f"{option} exists and is not empty (--force replaces it)")
        except OSError as exc:
            raise OutputError(dest, f"cannot use {option}: {exc.strerror}") from None
    _check_writable(dest, os.path.dirname(os.path.abspath(dest)), option)


def relative_inside(path: str, base: str) -> str | None:
    """`path` as a POSIX path relative to `base` when it lies inside it (else None).

    Used for the one thing both recording and checking must leave out of a walk: the links
    directory (and the signing key) when they sit inside the project.
    """
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(base))
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        return None
    return rel.replace(os.sep, "/")
