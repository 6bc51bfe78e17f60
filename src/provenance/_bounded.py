"""Read an untrusted input file with a size bound; every error names the file."""

from __future__ import annotations

from provenance.errors import InputError


def read_bounded(
    path: str, limit: int, what: str = "file", error: type[InputError] = InputError
) -> bytes:
    """The bytes of `path`, refusing files over `limit` bytes (never reads more than limit+1)."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise error(path, f"{what} not found") from None
    except IsADirectoryError:
        raise error(path, f"{what} is a directory") from None
    except OSError as exc:
        raise error(path, f"cannot read {what}: {exc.strerror}") from None
    if len(data) > limit:
        raise error(path, f"{what} is larger than {limit} bytes")
    return data
