"""in-toto Statement v1 with typed predicates; DSSE signing; reading with the signature first.

Reading an attestation follows python-tuf's order: bounded read -> DSSE envelope structure ->
signature over the raw payload -> payload type -> only then is the payload parsed, checked by
the in-toto-attestation library, and its predicate read strictly by the registered class.
A predicate type is one module: subclass `Predicate`, decorate it with `@register`.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from provenance._fs import canonical_json, load_json_bounded, read_bounded
from provenance.attest._fields import Fields, digest_set
from provenance.attest._signature import key_map, verified_keyids
from provenance.errors import InputError, UsageError, VerificationError
from provenance.signing import dsse

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
STATEMENT_TYPE_V01 = "https://in-toto.io/Statement/v0.1"
PAYLOAD_TYPE = dsse.IN_TOTO_PAYLOAD_TYPE
MAX_ATTESTATION_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Subject:
    """An artifact the statement is about: a name (a POSIX path for files) and its digests."""

    name: str
    digest: Mapping[str, str]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise InputError(None, "subject name must be a string")
        object.__setattr__(self, "digest", digest_set(self.digest, f"subject '{self.name}'", None))

    def to_dict(self) -> dict[str, Any]:
        """The subject as in-toto JSON."""
        return {"name": self.name, "digest": dict(self.digest)}

    @classmethod
    def from_dict(cls, doc: Any, source: str | None, index: int) -> Subject:
        """Read subject number `index` strictly."""
        f = Fields(doc, f"subject[{index}]", source)
        name = f.text("name", required=False, empty=True) or ""
        digest = digest_set(f.obj("digest"), f"subject[{index}]", source)
        f.done()
        return cls(name, digest)


class Predicate(abc.ABC):
    """A typed predicate: built validated, serialised by `to_dict`, read strictly by `from_dict`."""

    predicate_type: ClassVar[str]

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The predicate as JSON."""

    @classmethod
    @abc.abstractmethod
    def from_dict(cls, doc: Any, source: str | None) -> Predicate:
        """Parse `doc`; raise InputError naming `source` on any unknown or mistyped field."""


P = TypeVar("P", bound=Predicate)
_REGISTRY: dict[str, type[Predicate]] = {}


def register(cls: type[P]) -> type[P]:
    """Class decorator: make `cls` the reader of its `predicate_type`."""
    existing = _REGISTRY.get(cls.predicate_type)
    if existing is not None and existing is not cls:
        raise UsageError(f"predicate type {cls.predicate_type} is registered twice")
    _REGISTRY[cls.predicate_type] = cls
    return cls


def predicate_class(predicate_type: str) -> type[Predicate]:
    """The registered reader of `predicate_type` (UsageError when none is)."""
    try:
        return _REGISTRY[predicate_type]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UsageError(
            f"no reader for predicate type {predicate_type} (known: {known})"
        ) from None


@dataclass(frozen=True)
class Statement(Generic[P]):
    """An in-toto Statement v1: what (subjects) is described how (predicate)."""

    subjects: tuple[Subject, ...]
    predicate: P

    def __post_init__(self) -> None:
        object.__setattr__(self, "subjects", tuple(self.subjects))
        if not self.subjects:
            raise UsageError("a statement needs at least one subject")
        names = [s.name for s in self.subjects if s.name]
        if len(names) != len(set(names)):
            raise UsageError("statement subjects must have distinct names")

    @property
    def predicate_type(self) -> str:
        """The predicate type URI of the statement's predicate."""
        return self.predicate.predicate_type

    def to_dict(self) -> dict[str, Any]:
        """The statement as in-toto Statement v1 JSON."""
        return {
            "_type": STATEMENT_TYPE,
            "subject": [s.to_dict() for s in self.subjects],
            "predicateType": self.predicate_type,
            "predicate": self.predicate.to_dict(),
        }

    def to_json(self) -> bytes:
        """The canonical bytes that are signed, checked by in-toto-attestation's bindings first."""
        doc = self.to_dict()
        _library_check(doc, None)
        return canonical_json(doc)

    def sign(self, signer: Any) -> dict[str, Any]:
        """A DSSE envelope over the canonical statement, signed by a securesystemslib Signer."""
        return dsse.sign(self.to_json(), signer, PAYLOAD_TYPE)

    def digests(self) -> dict[str, str]:
        """Subject name -> sha256 (subjects without a sha256 are left out)."""
        return {s.name: s.digest["sha256"] for s in self.subjects if "sha256" in s.digest}


@dataclass(frozen=True)
class SignedStatement(Generic[P]):
    """A statement whose signature verified with `keyids`; `payload_sha256` names its bytes."""

    statement: Statement[P]
    keyids: tuple[str, ...]
    payload_sha256: str
    source: str
    envelope: dict[str, Any] = field(repr=False)


def parse_statement(
    payload: bytes, source: str | None, cls: type[Predicate], *, read_v01: bool = False
) -> Statement[Any]:
    """Parse an (already authenticated) payload as a Statement v1 whose predicate is `cls`.

    The JSON is read by the project's bounded parser: a duplicated key (which parsers resolve
    differently: the first or the last wins) is refused, never silently resolved. `read_v01`
    also accepts Statement v0.1 (what slsa-github-generator writes around SLSA v0.2).
    """
    doc = load_json_bounded(payload, source or "<statement>", what="signed payload")
    f = Fields(doc, "statement", source)
    stype = f.text("_type")
    accepted = (STATEMENT_TYPE, STATEMENT_TYPE_V01) if read_v01 else (STATEMENT_TYPE,)
    if stype not in accepted:
        raise InputError(source, f"statement _type is {stype!r}, expected {STATEMENT_TYPE!r}")
    ptype = f.text("predicateType")
    if ptype != cls.predicate_type:
        raise InputError(
            source,
            f"predicateType is {ptype!r}, expected {cls.predicate_type!r} "
            "(an attestation of another kind was given)",
        )
    subjects = [Subject.from_dict(s, source, i) for i, s in enumerate(f.array("subject"))]
    predicate = cls.from_dict(f.obj("predicate"), source)
    f.done()
    if stype == STATEMENT_TYPE:  # the reference bindings know Statement v1 only
        _library_check(doc, source)
    try:
        return Statement(tuple(subjects), predicate)
    except UsageError as exc:
        raise InputError(source, str(exc)) from None


def _library_check(doc: dict[str, Any], source: str | None) -> None:
    """Validate with the in-toto-attestation reference bindings (protobuf schema + rules)."""
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement as ReferenceStatement

    try:
        pb = json_format.ParseDict(doc, statement_pb2.Statement())
        ReferenceStatement.copy_from_pb(pb).validate()
    except (json_format.ParseError, ValueError) as exc:
        raise InputError(source, f"not a valid in-toto Statement v1: {exc}") from None


def _expected_class(expected: str | type[Predicate]) -> type[Predicate]:
    return predicate_class(expected) if isinstance(expected, str) else expected


def verify_envelope(
    data: bytes, source: str, keys: Mapping[str, Any] | Iterable[Any]
) -> tuple[dsse.ParsedEnvelope, list[str]]:
    """Parse the envelope and check its signature; the payload itself is not parsed here."""
    trusted = key_map(keys)
    env = dsse.parse(data, source, "attestation")
    good = verified_keyids(env, trusted)
    if not good:
        claimed = ", ".join(k[:16] or "(no key id)" for k in env.keyids) or "no signature"
        allowed = ", ".join(k[:16] for k in sorted(trusted))
        raise VerificationError(
            f"{source}: signature does not verify with the trusted key(s) {allowed} "
            f"(signatures by: {claimed}); the attestation was altered or signed by another key"
        )
    if env.payload_type != PAYLOAD_TYPE:
        raise InputError(source, f"payloadType is {env.payload_type!r}, expected {PAYLOAD_TYPE!r}")
    return env, good


def read_statement(
    data: bytes | str | os.PathLike[str],
    keys: Mapping[str, Any] | Iterable[Any],
    expected_predicate_type: str | type[Predicate],
    *,
    source: str | None = None,
) -> SignedStatement[Any]:
    """Verify one DSSE-signed statement (bytes or a file) and return it typed.

    Raises VerificationError (exit 1) when no trusted key signed it, InputError (exit 3) for a
    malformed envelope or statement, another predicate type, or an unknown field.
    """
    cls = _expected_class(expected_predicate_type)
    if isinstance(data, bytes):
        raw, where = data, source or "<attestation>"
        if len(raw) > MAX_ATTESTATION_BYTES:
            raise InputError(where, f"attestation is larger than {MAX_ATTESTATION_BYTES} bytes")
    else:
        where = source or os.fspath(data)
        raw = read_bounded(os.fspath(data), MAX_ATTESTATION_BYTES, "attestation")
    env, good = verify_envelope(raw.strip(), where, keys)
    statement = parse_statement(env.payload, where, cls)
    return SignedStatement(
        statement,
        tuple(good),
        hashlib.sha256(env.payload).hexdigest(),
        where,
        json.loads(raw),
    )


def read_statements(
    path: str | os.PathLike[str],
    keys: Mapping[str, Any] | Iterable[Any],
    expected_predicate_type: str | type[Predicate],
) -> list[SignedStatement[Any]]:
    """Every envelope of an `.intoto.jsonl` file (one DSSE envelope per line), each verified."""
    where = os.fspath(path)
    raw = read_bounded(where, MAX_ATTESTATION_BYTES, "attestation")
    if _is_one_document(raw):  # a single (possibly pretty-printed) envelope
        return [read_statement(raw, keys, expected_predicate_type, source=where)]
    lines = [line for line in raw.splitlines() if line.strip()]
    if not lines:
        raise InputError(where, "no attestation in file")
    return [
        read_statement(
            line,
            keys,
            expected_predicate_type,
            source=where if len(lines) == 1 else f"{where} (line {i + 1})",
        )
        for i, line in enumerate(lines)
    ]


def _is_one_document(raw: bytes) -> bool:
    if raw.count(b"\n", 0, len(raw.rstrip())) == 0:
        return True
    try:
        return isinstance(json.loads(raw), dict)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False


def dumps_jsonl(envelopes: Iterable[dict[str, Any]]) -> bytes:
    """`.intoto.jsonl`: one compact DSSE envelope per line (what slsa-verifier reads)."""
    return b"".join(dsse.dumps(e) + b"\n" for e in envelopes)


def write_jsonl(path: str | os.PathLike[str], envelopes: Iterable[dict[str, Any]]) -> None:
    """Write an `.intoto.jsonl` atomically (readers never see half a file)."""
    from provenance._fs import write_atomic

    write_atomic(path, dumps_jsonl(envelopes))
