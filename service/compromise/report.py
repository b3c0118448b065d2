"""A compromise report as the API answers it, now or when read again later.

The report is assembled from the kept record and its exposure each time it is
read, so a report read a moment after the response also holds what the other
processes added (their reads, the tokens only they knew). A secret
compromise's emergency rotation is read as it stands now: one that was still
`rotating` when answered reads `contained` once it has retired the version.
A report and a listing entry take their state from one function, `state`.

Reports name services, secrets, versions, token ids and times: never a value
or a token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.compromise.exposure import SERVICE, TOKEN, Exposure, Read, Revoked
from service.compromise.records import Compromise, Kind, State
from service.rotation.records import Rotation, RotationStore
from service.rotation.records import State as RotationState


class Reports:
    """Reads compromise reports back, whole."""

    def __init__(self, exposure: Exposure, rotations: RotationStore) -> None:
        self._exposure = exposure
        self._rotations = rotations

    def view(self, compromise: Compromise) -> dict[str, Any]:
        """The report of `compromise`, as JSON."""
        reads = self._exposure.reads(compromise.id)
        if compromise.kind is Kind.SERVICE:
            return _head(compromise, compromise.state) | _service(compromise, reads)
        revoked = self._exposure.revoked(compromise.id)
        rotation = self._rotation(compromise)
        now = state(compromise, rotation)
        return _head(compromise, now) | _secret(
            compromise, now, reads, revoked, rotation
        )

    def summary(self, compromise: Compromise) -> dict[str, Any]:
        """A listing entry: what, when, by whom, how it stands now."""
        return _head(compromise, state(compromise, self._rotation(compromise)))

    def _rotation(self, compromise: Compromise) -> Rotation | None:
        rotation_id = compromise.detail.get("rotation")
        if compromise.kind is not Kind.SECRET or not rotation_id:
            return None
        return self._rotations.get(rotation_id)


def state(compromise: Compromise, rotation: Rotation | None) -> State:
    """How a response stands now: a secret's, as its emergency rotation does.

    `rotation` is the one the record names. A response still running, one
    without a rotation, and a service's keep the state they were kept with.
    """
    settled = compromise.state in (State.ROTATING, State.FAILED)
    if compromise.kind is not Kind.SECRET or rotation is None or not settled:
        return compromise.state
    return secret_state(rotation, compromise.version)


def secret_state(rotation: Rotation, version: str | None) -> State:
    """A secret compromise's state, given the rotation replacing `version`."""
    if rotation.state is RotationState.COMPLETED and rotation.old_version == version:
        return State.CONTAINED
    if rotation.state in (RotationState.NEEDS_ATTENTION, RotationState.ABANDONED):
        return State.FAILED
    return State.ROTATING


def _head(compromise: Compromise, now: State) -> dict[str, Any]:
    return {
        "id": compromise.id,
        "env": compromise.env,
        "kind": compromise.kind.value,
        compromise.kind.value: compromise.subject,
        "version": compromise.version,
        "state": now.value,
        "reason": compromise.reason,
        "actor": compromise.actor,
        "created_at": _iso(compromise.created_at),
        "announced_at": _iso(compromise.announced_at),
        "finished_at": _iso(compromise.finished_at),
    }


def _secret(
    compromise: Compromise,
    now: State,
    reads: list[Read],
    revoked: list[Revoked],
    rotation: Rotation | None,
) -> dict[str, Any]:
    detail = compromise.detail
    disabled = bool(detail.get("version_disabled")) or now is State.CONTAINED
    return {
        "grace_skipped": True,
        "version_disabled": disabled,
        "new_version": detail.get("new_version"),
        "current_version": detail.get("current_version")
        or (rotation.new_version if disabled and rotation else None),
        "rotation": None if rotation is None else _rotation(rotation),
        "error": detail.get("error"),
        "services": [
            {
                "service": read.service,
                "first_read_at": _iso(read.first_read_at),
                "last_read_at": _iso(read.last_read_at),
                "reads": read.reads,
            }
            for read in reads
        ],
        "tokens_revoked": [
            {
                "jti": item.subject,
                "service": item.service,
                "expires_at": _iso(item.expires_at),
            }
            for item in revoked
            if item.kind == TOKEN
        ],
        "services_revoked": [
            {"service": item.service, "revoked_before": _iso(item.revoked_at)}
            for item in revoked
            if item.kind == SERVICE
        ],
    }


def _service(compromise: Compromise, reads: list[Read]) -> dict[str, Any]:
    detail = compromise.detail
    body: dict[str, Any] = {
        "window_seconds": detail.get("window_seconds"),
        "since": _iso(compromise.since),
        "disabled": detail.get("disabled"),
        "revoked_before": detail.get("revoked_before"),
        "credentials_revoked": detail.get("credentials_revoked", []),
        "reads": [
            {
                "secret": read.secret,
                "version": read.version,
                "first_read_at": _iso(read.first_read_at),
                "last_read_at": _iso(read.last_read_at),
                "reads": read.reads,
            }
            for read in reads
        ],
    }
    if "rotations" in detail:
        body["rotations"] = detail["rotations"]
    return body


def _rotation(rotation: Rotation) -> dict[str, Any]:
    return {
        "id": rotation.id,
        "state": rotation.state.value,
        "old_version": rotation.old_version,
        "new_version": rotation.new_version,
        "retired_at": _iso(rotation.retired_at),
        "failed_step": rotation.failed_step,
        "error": rotation.error,
    }


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, tz=UTC).isoformat()
