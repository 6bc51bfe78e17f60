r"""MLflow model-registry store plugin: only the gate decides what protected aliases point at.

MLflow has no pre-promotion hook and one EDIT permission covers aliases, tags and versions, so
the checks live in the registry store itself. Run the server with

    PROVENANCE_GATE_PUBLIC_KEY=/etc/provenance/gate.pub \
    PROVENANCE_PROTECTED_ALIASES=champion,production \
    mlflow server --backend-store-uri postgresql://… \
                  --registry-store-uri provenance-postgresql://…

What the store enforces, for every client and user:
- a protected alias (or the Production stage) moves only to a version that carries the gate's
  PASSED decision for that alias, is not revoked, is not older than the current holder's decision
  (rollback goes through `provenance promote`), and whose files, re-hashed here, still have the
  signed digest;
- `provenance.*` tags are written only as gate-signed records for that very tag, model and
  version, never older than the record they replace, and are never deleted; versions and models
  holding protected aliases are not deleted or renamed; copies drop the records;
- aliases outside [A-Za-z0-9_-] are refused (look-alikes), and case does not escape protection.
Every refusal is PERMISSION_DENIED with a reason (never a 500), and is logged.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, TEMPORARILY_UNAVAILABLE
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

from provenance import _config
from provenance.errors import ProvenanceError
from provenance.gate._decision import (
    DECISION_PREFIX,
    REVOKED_TAG,
    VSA_PREFIX,
    Decision,
    decision_for,
    is_reserved,
    open_record,
    revocation_of,
)
from provenance.gate._vsa import check_vsa_record
from provenance.hashing import Manifest, hash_file

SCHEMES = {
    "provenance-sqlite": "sqlite",
    "provenance-postgresql": "postgresql",
    "provenance-mysql": "mysql",
}
DEFAULT_PROTECTED = ("champion", "production")
_INSERT_ATTEMPTS = 3
_ALIAS = re.compile(r"[A-Za-z0-9_-]{1,255}\Z")
log = logging.getLogger("provenance.gate.store")


def _refuse(message: str) -> MlflowException:
    log.warning("ml-provenance gate refused: %s", message)
    return MlflowException(f"ml-provenance gate: {message}", error_code=PERMISSION_DENIED)


def protected_aliases(raw: str | None) -> frozenset[str]:
    """The configured protected aliases; anything empty or malformed keeps the defaults."""
    names = [a.strip() for a in (raw or "").split(",")]
    names = [a for a in names if a]
    if raw is None:
        return frozenset(DEFAULT_PROTECTED)
    if not names or not all(_ALIAS.match(a) for a in names):
        log.error(
            "PROVENANCE_PROTECTED_ALIASES=%r is empty or malformed; protecting the defaults (%s)",
            raw,
            ", ".join(DEFAULT_PROTECTED),
        )
        return frozenset(DEFAULT_PROTECTED)
    return frozenset(a.casefold() for a in names) | frozenset(DEFAULT_PROTECTED)


def _int_env(name: str, default: int) -> int:
    raw = _config.environment(name)
    try:
        value = int(raw if raw is not None else default)
    except ValueError:
        log.error("%s is not an integer; using %d", name, default)
        return default
    return value if value > 0 else default


class ProvenanceRegistryStore(SqlAlchemyStore):
    """SqlAlchemyStore that lets only the gate's signed decisions move protected aliases."""

    def __init__(self, db_uri: str) -> None:
        super().__init__(db_uri)
        self.protected = protected_aliases(_config.environment("PROVENANCE_PROTECTED_ALIASES"))
        self.max_bytes = _int_env("PROVENANCE_REHASH_MAX_BYTES", 100 << 30)
        self.rehash_wait = _int_env("PROVENANCE_REHASH_WAIT_SECONDS", 120)
        self._rehash_slots = threading.BoundedSemaphore(
            _int_env("PROVENANCE_REHASH_CONCURRENCY", 2)
        )
        self.gate_key, self.gate_key_error = self._load_gate_key()
        log.warning(
            "ml-provenance gate: protecting aliases %s; gate key %s",
            ", ".join(sorted(self.protected)),
            self.gate_key.keyid if self.gate_key else f"UNUSABLE ({self.gate_key_error})",
        )

    @staticmethod
    def _load_gate_key() -> tuple[Any, str | None]:
        from provenance.signing import load_public_key

        path = _config.environment("PROVENANCE_GATE_PUBLIC_KEY")
        if not path:
            return None, "PROVENANCE_GATE_PUBLIC_KEY is not set; protected changes are refused"
        try:
            return load_public_key(path), None
        except ProvenanceError as exc:
            return None, str(exc)

    def _key(self) -> Any:
        if self.gate_key is None:
            raise _refuse(f"no usable gate key ({self.gate_key_error})")
        return self.gate_key

    def _is_protected(self, alias: str) -> bool:
        if not _ALIAS.match(alias):
            raise _refuse(
                f"alias {alias!r} has characters outside A-Z a-z 0-9 _ - (look-alike aliases "
                "are refused)"
            )
        return alias.casefold() in self.protected

    def _guard(self, what: str, check: Any) -> None:
        """Run `check`, refusing with a reason when it fails.

        An unexpected error refuses with a reason instead of a 500, and an unreachable artifact
        store is a 503 (the client's "try again later", exit 4).
        """
        try:
            check()
        except MlflowException:
            raise
        except ProvenanceError as exc:
            raise _refuse(f"{what}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - fail closed, never a 500
            if _unreachable(exc):
                log.warning(
                    "ml-provenance gate: %s: the artifact store is unreachable: %s", what, exc
                )
                raise MlflowException(
                    f"ml-provenance gate: {what}: the object store is unreachable "
                    f"({type(exc).__name__}: {exc}); nothing was changed, try again",
                    error_code=TEMPORARILY_UNAVAILABLE,
                ) from None
            raise _refuse(f"{what}: {type(exc).__name__}: {exc}") from None

    # --- protected aliases -------------------------------------------------------------

    def _check_promotion(self, name: str, version: str, alias: str) -> Decision:
        key = self._key()
        version = str(version)
        mv = self.get_model_version(name, version)
        tags = dict(mv.tags)
        revoked = revocation_of(tags, key, name, version)
        if revoked is not None:
            raise _refuse(f"version {version} of '{name}' was revoked: {revoked.reason}")
        decision = decision_for(tags, key, name, version, alias)
        if not decision.passed:
            raise _refuse(
                f"the gate's decision for version {version} of '{name}' @{alias} is FAILED"
            )
        self._check_not_rollback(name, version, alias, decision, key)
        actual = self._rehash(name, version)
        if actual.digest() != decision.artifacts_sha256:
            why = Manifest(decision.files).diff(actual).summary() if decision.files else ""
            raise _refuse(
                f"the files of version {version} changed since the gate verified them"
                + (f": {why}" if why else "")
            )
        return decision

    def _check_not_rollback(
        self, name: str, version: str, alias: str, decision: Decision, key: Any
    ) -> None:
        try:
            holder = super().get_model_version_by_alias(name, alias)
        except MlflowException:
            return  # nobody holds it yet
        if str(holder.version) == version:
            return
        try:
            current = decision_for(dict(holder.tags), key, name, str(holder.version), alias)
        except ProvenanceError:
            return  # the holder has no valid decision: nothing to roll back from
        if current.verified_at > decision.verified_at:
            raise _refuse(
                f"rollback refused: version {version}'s decision for @{alias} "
                f"({decision.verified_at}) is older than that of version {holder.version} "
                f"({current.verified_at}); run `provenance promote` on version {version} to "
                "re-verify it and roll back deliberately"
            )

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        recheck = None
        if self._is_protected(alias):
            what = f"cannot check version {version} of '{name}'"
            checked: list[Decision] = []
            self._guard(what, lambda: checked.append(self._check_promotion(name, version, alias)))

            def recheck() -> None:  # another promotion set the alias meanwhile
                self._guard(
                    what,
                    lambda: self._check_not_rollback(
                        name, str(version), alias, checked[0], self._key()
                    ),
                )

        _racing_insert(
            lambda: super(ProvenanceRegistryStore, self).set_registered_model_alias(
                name, alias, version
            ),
            recheck,
        )

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        if self._is_protected(alias):

            def check() -> None:
                holder = self.get_model_version_by_alias(name, alias)
                if revocation_of(dict(holder.tags), self._key(), name, str(holder.version)):
                    return
                raise _refuse(
                    f"protected alias '{alias}' of '{name}' is only removed by revoking its "
                    "version (`provenance revoke`) or moved by `provenance promote`"
                )

            self._guard(f"cannot remove alias '{alias}'", check)
        super().delete_registered_model_alias(name, alias)

    def transition_model_version_stage(
        self, name: str, version: str, stage: str, archive_existing_versions: bool
    ) -> Any:
        if stage.strip().casefold() == "production":
            self._guard(
                f"cannot check version {version} of '{name}'",
                lambda: self._check_promotion(name, version, "production"),
            )
        return super().transition_model_version_stage(
            name, version, stage, archive_existing_versions
        )

    # --- the gate's records -------------------------------------------------------------

    def set_model_version_tag(self, name: str, version: str, tag: Any) -> None:
        recheck = None
        if is_reserved(tag.key):

            def recheck() -> None:
                self._guard(
                    f"tag '{tag.key}'",
                    lambda: self._check_record(name, str(version), tag.key, tag.value),
                )

            recheck()
        _racing_insert(
            lambda: super(ProvenanceRegistryStore, self).set_model_version_tag(name, version, tag),
            recheck,
        )

    def _check_record(self, name: str, version: str, key: str, value: str) -> None:
        if key.startswith(VSA_PREFIX):
            check_vsa_record(key, value, self._key(), name, version)
            return
        if not (key == REVOKED_TAG or key.startswith(DECISION_PREFIX)):
            raise _refuse(f"'{key}' is reserved for the gate's signed records")
        gate_key = self._key()
        existing = dict(self.get_model_version(name, version).tags).get(key)
        if key == REVOKED_TAG and existing is not None:
            raise _refuse(f"version {version} of '{name}' is already revoked")
        record = open_record(key, value, gate_key, name, version)
        if isinstance(record, Decision) and existing is not None:
            try:
                old = open_record(key, existing, gate_key, name, version)
            except ProvenanceError:
                return  # replacing something invalid with a valid record
            if isinstance(old, Decision) and old.verified_at > record.verified_at:
                raise _refuse(
                    f"'{key}' already holds a newer decision ({old.verified_at}); an older one "
                    f"({record.verified_at}) cannot replace it"
                )

    def delete_model_version_tag(self, name: str, version: str, key: str) -> None:
        if is_reserved(key):
            raise _refuse(f"'{key}' is a gate record and cannot be deleted")
        super().delete_model_version_tag(name, version, key)

    def set_registered_model_tag(self, name: str, tag: Any) -> None:
        if is_reserved(tag.key):
            raise _refuse(f"'{tag.key}' is reserved for the gate")
        super().set_registered_model_tag(name, tag)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        if is_reserved(key):
            raise _refuse(f"'{key}' is reserved for the gate")
        super().delete_registered_model_tag(name, key)

    def create_registered_model(self, name: str, tags: Any = None, *args: Any, **kw: Any) -> Any:
        if any(is_reserved(t.key) for t in tags or ()):
            raise _refuse("registered models cannot be created with provenance.* tags")
        return super().create_registered_model(name, tags, *args, **kw)

    def create_model_version(
        self, name: str, source: str, run_id: Any = None, tags: Any = None, *args: Any, **kw: Any
    ) -> Any:
        """Create a version; it never starts with gate records.

        `copy_model_version` (which MLflow's client implements as a create with the source's
        tags) gets a copy without them, since a decision is bound to the version it was made
        for.
        """
        kept = [t for t in tags or () if not is_reserved(t.key)]
        if len(kept) != len(tags or ()):
            log.warning(
                "ml-provenance gate: dropped provenance.* tags from a new version of %r", name
            )
        return super().create_model_version(name, source, run_id, kept, *args, **kw)

    # --- deleting what protected aliases rest on --------------------------------------

    def _holds_protected(self, name: str, version: str | None = None) -> list[str]:
        aliases: dict[str, Any] = dict(self.get_registered_model(name).aliases or {})
        return sorted(
            a
            for a, v in aliases.items()
            if a.casefold() in self.protected and (version is None or str(v) == str(version))
        )

    def delete_model_version(self, name: str, version: str) -> None:
        held = self._holds_protected(name, version)
        if held:
            raise _refuse(
                f"version {version} of '{name}' holds protected alias(es) {', '.join(held)}; "
                "promote another version or revoke it first"
            )
        super().delete_model_version(name, version)

    def delete_registered_model(self, name: str) -> None:
        held = self._holds_protected(name)
        if held:
            raise _refuse(f"'{name}' holds protected alias(es) {', '.join(held)}")
        super().delete_registered_model(name)

    def rename_registered_model(self, name: str, new_name: str) -> Any:
        held = self._holds_protected(name)
        if held:
            raise _refuse(
                f"'{name}' holds protected alias(es) {', '.join(held)}; the gate's decisions "
                "name the model, so renaming it would orphan them"
            )
        return super().rename_registered_model(name, new_name)

    # --- bounded re-hash ----------------------------------------------------------------

    def _rehash(self, name: str, version: str) -> Manifest:
        """Hash the version's files from the artifact store this server serves.

        Each file is streamed (no copy of the version), at most N at a time; versions over the
        cap are refused.
        """
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        source = self.get_model_version_download_uri(name, version)
        if source.startswith("mlflow-artifacts:"):
            from mlflow.server import ARTIFACTS_DESTINATION_ENV_VAR

            root = _config.environment(ARTIFACTS_DESTINATION_ENV_VAR)
            if not root:
                raise _refuse(f"cannot read {source} from this process to re-check its files")
            source = root.rstrip("/") + "/" + source.split(":", 1)[1].lstrip("/")
        repo = get_artifact_repository(source)
        files = dict(_list_files(repo, ""))
        total = sum(files.values())
        if total > self.max_bytes:
            raise _refuse(
                f"version {version} holds {total} bytes, over the re-hash cap of {self.max_bytes} "
                "(PROVENANCE_REHASH_MAX_BYTES)"
            )
        if not self._rehash_slots.acquire(timeout=self.rehash_wait):
            raise _refuse("too many re-hashes in progress; try again")
        try:
            return Manifest({path: _digest(repo, path, files[path]) for path in sorted(files)})
        finally:
            self._rehash_slots.release()


def _unreachable(exc: Exception) -> bool:
    """A connection or transport failure (not an answer such as "access denied")."""
    if isinstance(exc, (OSError, TimeoutError)):
        return True
    try:
        from botocore.exceptions import BotoCoreError, FlexibleChecksumError
    except ImportError:  # pragma: no cover - the S3 store needs botocore
        return False
    # A checksum that does not match is the store's bytes failing a check, not an outage.
    return isinstance(exc, BotoCoreError) and not isinstance(exc, FlexibleChecksumError)


def _racing_insert(write: Callable[[], None], recheck: Callable[[], None] | None) -> None:
    """Run `write` (an upsert of a tag or alias row), surviving a concurrent insert.

    When a concurrent request inserted the same row first, our insert violates the primary key:
    check again against what that request wrote, then retry, which now updates the row. Without
    this, two promotions racing for one version or alias make one of them a server error.
    """
    from sqlalchemy.exc import IntegrityError

    for attempt in range(_INSERT_ATTEMPTS):
        try:
            write()
            return
        except MlflowException as exc:
            if attempt + 1 == _INSERT_ATTEMPTS or not isinstance(exc.__cause__, IntegrityError):
                raise
            log.info("ml-provenance gate: concurrent insert of the same row; retrying")
            if recheck is not None:
                recheck()


def _list_files(repo: Any, path: str) -> Iterator[tuple[str, int]]:
    for info in repo.list_artifacts(path or None):
        if info.is_dir:
            yield from _list_files(repo, info.path)
        else:
            yield info.path, int(info.file_size or 0)


def _digest(repo: Any, path: str, listed: int) -> str:
    """sha256 of one artifact.

    Read in place (local), streamed in ranged parts (S3), or one file at a time. Local files
    and S3 objects must still be the size their listing said (the cap was checked on those
    sizes); other stores may not report sizes.
    """
    import stat

    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository
    from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

    from provenance.hashing import objects

    if isinstance(repo, LocalArtifactRepository):
        full = os.path.join(repo.artifact_dir, path)
        if not stat.S_ISREG(os.lstat(full).st_mode):
            raise _refuse(f"'{path}' in the artifact store is not a regular file")
        digest = hash_file(full, path).hex()
        if os.path.getsize(full) != listed:
            raise _refuse(f"'{path}' changed while the version was re-hashed (its size)")
        return digest
    if isinstance(repo, S3ArtifactRepository):
        bucket, prefix = repo.parse_s3_compliant_uri(repo.artifact_uri)
        key = "/".join(p for p in (prefix.strip("/"), path) if p)
        return objects.object_sha256(repo._get_s3_client(), bucket, key, size=listed)
    with tempfile.TemporaryDirectory(prefix="provenance-store-") as tmp:
        local = repo.download_artifacts(path, dst_path=tmp)
        return hash_file(local, path).hex()


def make_store(store_uri: str, tracking_uri: str | None = None) -> ProvenanceRegistryStore:
    """Entry point for `provenance-<db>://…` registry store URIs."""
    scheme, sep, rest = store_uri.partition(":")
    if scheme not in SCHEMES or not sep:
        raise MlflowException(f"unsupported registry store URI {store_uri!r}")
    return ProvenanceRegistryStore(f"{SCHEMES[scheme]}:{rest}")
