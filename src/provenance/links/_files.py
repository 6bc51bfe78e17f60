"""Link files: their names, where they are found, writing them, and reading them back.

Reading is the only way any part of ml-provenance obtains a link: a bounded read, the DSSE
signature checked against the keys the caller trusts, and only then the payload parsed (as
python-tuf's trusted metadata set does). What passed is returned as a `VerifiedLink` that carries
the exact bytes (or, for very large links, their digest), so later consumers never re-open the
file.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provenance._fs import load_json_bounded, read_bounded, write_atomic
from provenance.errors import InputError, LinkFormatError
from provenance.links._model import LinkData, parse_link
from provenance.signing import dsse

if TYPE_CHECKING:
    from securesystemslib.signer import Key, Signer

SUFFIX = ".link"
# `<step>.<first 8 hex digits of the signing key id>.link`, as in-toto names them.
FILE_RE = re.compile(r"(?P<step>[A-Za-z0-9_.-]{1,128})\.(?P<keyid>[0-9a-f]{8})\.link\Z")
RUN_ID_FILE = "RUN_ID"  # the links directory's current pipeline run id (record/_run_id.py)


def link_filename(step: str, keyid: str) -> str:
    """The file name in-toto gives the link of `step` signed by `keyid`.

    Args:
        step: the step name.
        keyid: the signing key's id (hex; its first 8 digits are used).

    Returns:
        `<step>.<keyid[:8]>.link`.
    """
    return f"{step}.{keyid[:8]}{SUFFIX}"


def write_link(payload: bytes | bytearray, signer: Signer, step: str, links_dir: str) -> str:
    """Sign `payload` and write `<step>.<keyid[:8]>.link` atomically.

    The file is byte for byte `dsse.dumps(dsse.sign(payload, signer))`, but the base64 of a
    large payload is streamed to disk in pieces instead of held as one string, twice.

    Args:
        payload: the link payload (`link_payload`).
        signer: the functionary's securesystemslib signer.
        step: the step name (the file name's first part).
        links_dir: the directory to write to.

    Returns:
        The path written.
    """
    path = os.path.join(links_dir, link_filename(step, signer.public_key.keyid))
    write_atomic(path, dsse.signed_chunks(payload, signer))
    return path


def list_links(links_dir: str) -> list[str]:
    """Paths of every link file in `links_dir`.

    Args:
        links_dir: the links directory.

    Returns:
        The paths of the files named like links, sorted; none when the directory does not exist.

    Raises:
        LinkFormatError: `links_dir` is not a directory or cannot be listed.
    """
    try:
        names = os.listdir(links_dir)
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise LinkFormatError(links_dir, "is not a directory") from None
    except OSError as exc:
        raise LinkFormatError(links_dir, f"cannot list links: {exc.strerror}") from None
    return sorted(os.path.join(links_dir, n) for n in names if FILE_RE.match(n))


def step_links(links_dir: str, step: str) -> list[str]:
    """The link files named for `step` (`<step>.<keyid[:8]>.link`) in `links_dir`."""
    prefix = step + "."
    return [
        p
        for p in list_links(links_dir)
        if os.path.basename(p).startswith(prefix) and len(os.path.basename(p)) == len(step) + 14
    ]


@dataclass(frozen=True)
class VerifiedLink:
    """A link whose signature verified with `keyid`; `envelope` is the exact file content.

    `envelope` is None when the reader did not keep it (`read_link(..., digest=)`: a
    million-artifact link file is ~150 MB); its digest was then taken when it was read.
    """

    file: str  # base name, e.g. train.1a2b3c4d.link
    keyid: str
    envelope: bytes | None
    link: LinkData
    digest: str | None = field(default=None, repr=False, compare=False)

    @property
    def payload(self) -> bytes:
        """The signed payload, decoded again from `envelope` when asked for.

        It is not kept: a million-artifact link's payload is over 100 MB.

        Raises:
            InputError: the link was read without keeping its bytes (a large link).
        """
        if self.envelope is None:
            raise InputError(self.file, "link bytes were not kept; read it again with read_link")
        return dsse.parse(self.envelope, self.file, "link").payload

    @property
    def sha256(self) -> str:
        """Digest of the link file as stored (what attestations refer to)."""
        if self.digest is None:
            assert self.envelope is not None  # one of the two is always set
            object.__setattr__(self, "digest", hashlib.sha256(self.envelope).hexdigest())
        return str(self.digest)

    @property
    def name(self) -> str:
        """The step name the link records."""
        return self.link.name

    @property
    def run_id(self) -> str | None:
        """The pipeline run id the link records, or None."""
        return self.link.run_id


@dataclass(frozen=True)
class Rejected:
    """A link file that did not verify, and why (for explanations, never for use).

    Attributes:
        file: the file's base name.
        reason: why it was rejected, in one line.
        keyids: the key ids its signatures claim (unverified).
        signed_by: key ids among the reader's `known` keys whose signature does verify (set by
            `LinkReader.read` when no claimed key was allowed; empty otherwise).
    """

    file: str
    reason: str
    keyids: tuple[str, ...] = ()
    signed_by: tuple[str, ...] = ()


def read_envelope(path: str, data: bytes | None = None) -> tuple[bytes, dsse.ParsedEnvelope]:
    """Bounded read of a link file and its envelope structure (nothing trusted yet).

    Args:
        path: the link file.
        data: its bytes when the caller already read them.

    Returns:
        The file's bytes and its parsed (not yet verified) DSSE envelope.

    Raises:
        InputError: unreadable, larger than `dsse.MAX_ENVELOPE_BYTES`, or not an envelope.
    """
    if data is None:
        data = read_bounded(path, dsse.MAX_ENVELOPE_BYTES, "link")
    return data, dsse.parse(data, path, "link")


def read_link(
    path: str,
    keys: Mapping[str, Key],
    *,
    data: bytes | None = None,
    envelope: dsse.ParsedEnvelope | None = None,
    sections: dict[bytes, Any] | None = None,
    digest: str | None = None,
) -> VerifiedLink | Rejected:
    """Read `path` and accept it only if one of `keys` signed it.

    The payload is parsed only after a signature verified; a malformed payload that verified is
    an error, an unsigned or foreign-signed one is merely rejected. Verifying many (or large)
    links: use `LinkReader`, which passes the arguments below.

    Args:
        path: the link file.
        keys: keyid -> Key of the functionaries allowed to sign it.
        data: the file's bytes, when the caller already holds them (with `envelope`, parsed
            from them by `read_envelope`, so the envelope is parsed once).
        envelope: the file's parsed envelope.
        sections: the artifact-section cache of one verification (see `parse_link`).
        digest: the file's sha256, passed with `envelope` instead of `data` by a caller that
            let the bytes go (a large link): the returned link then holds the digest only.

    Returns:
        The verified link, or `Rejected` saying why no key of `keys` verified.

    Raises:
        InputError: the file is unreadable, too large or not a DSSE envelope.
        LinkFormatError: the signed payload is not an in-toto link or is malformed.
    """
    raw: bytes | None
    if envelope is not None and (data is not None or digest is not None):
        raw, env = data, envelope
    else:
        raw, env = read_envelope(path, data)
    good = env.verified_keyids(dict(keys))
    if not good:
        claimed = ", ".join(k[:8] for k in env.keyids) or "no signature"
        return Rejected(
            os.path.basename(path),
            f"no valid signature by a trusted key ({claimed})",
            tuple(env.keyids),
        )
    if env.payload_type != dsse.IN_TOTO_PAYLOAD_TYPE:
        raise LinkFormatError(path, f"payload type '{env.payload_type}' is not in-toto")
    link = parse_link(env.payload_buffer, path, sections)
    if raw is None:
        return VerifiedLink(os.path.basename(path), good[0], None, link, digest)
    return VerifiedLink(os.path.basename(path), good[0], raw, link)


def claimed_run_id(path: str) -> str | None:
    """The pipeline run id a link claims, WITHOUT checking its signature.

    Only for diagnostics (a step naming stale links of another run in its folder); nothing may
    trust it.

    Args:
        path: the link file.

    Returns:
        The claimed run id; None when there is none or the file is not a readable link.
    """
    try:
        _, env = read_envelope(path)
        data = load_json_bounded(env.payload, path, what="link payload")
    except InputError:
        return None
    environment = data.get("environment") if isinstance(data, dict) else None
    value = environment.get("pipeline_run_id") if isinstance(environment, dict) else None
    return value if isinstance(value, str) else None
