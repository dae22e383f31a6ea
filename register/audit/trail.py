"""What one request touched, collected as it runs, for its audit event.

The audit hook (:mod:`register.audit.requests`) opens a :class:`Trail` for each FHIR request in a
context variable; the storage layer notes every row it serves through a requester's visibility
(the row's ``patient_id`` column and type: no JSON is parsed) and every version it writes. Worker
threads see the same trail (Starlette copies the context into them). Outside a request (the
loader, the command line, the register's own work) there is no trail and noting costs one
context-variable lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

_CURRENT: ContextVar[Trail | None] = ContextVar("audit_trail", default=None)


@dataclass
class Trail:
    """The patients whose data a request saw (with the kinds of data), what it wrote, and flags
    the privacy officer's review queue needs."""

    patients: dict[str, set[str]] = field(default_factory=dict)
    """Patient id -> resource types of theirs that were served or written."""
    read: list[str] = field(default_factory=list)
    """``Type/id`` of resources served by id (reads, vreads); searches record their query."""
    written: list[str] = field(default_factory=list)
    """``Type/id/_history/n`` of versions written."""
    consent_changed: bool = False
    outside_relationship: set[str] = field(default_factory=set)
    """Patients written to without a care relationship (a self-claimed one, or by a rule that
    does not need one, such as the organisation's own registration)."""
    recorded: bool = False
    """The request's event was committed with its write transaction."""
    event_for: Callable[[int], Any] | None = None
    """Builds the request's event for a status (set by the audit hook)."""
    deferring: bool = False
    """Inside the request's write transaction: events wait for its end (see ``record_now``)."""
    pending: list[Any] = field(default_factory=list)
    """Events to append at the end of the write transaction."""
    interaction: str | None = None
    """The interaction, when the handler knows it better than the route (a batch Bundle)."""

    def mark(self) -> tuple[Any, ...]:
        """What the trail holds now, for :meth:`undo_to` when the work since is rolled back."""
        return (
            {patient: set(types) for patient, types in self.patients.items()},
            len(self.read),
            len(self.written),
            self.consent_changed,
            set(self.outside_relationship),
            len(self.pending),
        )

    def undo_to(self, mark: tuple[Any, ...]) -> None:
        """Forget what was noted since ``mark``: its transaction or savepoint rolled back, so
        nothing of it was served or written (and events it raised were never stored). The
        resources it read by id stay named, as what the failed work was aimed at (a refused
        update's target), but not their patients."""
        patients, _read, written, consent, outside, pending = mark
        self.patients = patients
        del self.written[written:], self.pending[pending:]
        self.consent_changed = consent
        self.outside_relationship = outside

    def served(self, resource_type: str, patient_id: str | None) -> None:
        """Note one row served to the requester."""
        if patient_id is not None:
            types = self.patients.get(patient_id)
            if types is None:
                self.patients[patient_id] = {resource_type}
            else:
                types.add(resource_type)

    def patient_types(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Patients touched, each with the sorted kinds of data, in a stable order."""
        if len(self.patients) == 1:  # a read by id, most searches: built on the event loop
            ((patient, types),) = self.patients.items()
            return ((patient, tuple(types) if len(types) == 1 else tuple(sorted(types))),)
        return tuple((p, tuple(sorted(t))) for p, t in sorted(self.patients.items()))


def current() -> Trail | None:
    """The trail of the request running in this context, if any."""
    return _CURRENT.get()


def enter() -> tuple[Trail, Token[Trail | None]]:
    """Start a fresh trail in this context; :func:`leave` with the token ends it (the audit
    hook's form of :func:`open_trail`: no generator to build on every read)."""
    trail = Trail()
    return trail, _CURRENT.set(trail)


def leave(token: Token[Trail | None]) -> None:
    """End the trail :func:`enter` started."""
    _CURRENT.reset(token)


@contextmanager
def open_trail() -> Iterator[Trail]:
    """Run work with a fresh trail."""
    trail, token = enter()
    try:
        yield trail
    finally:
        leave(token)


@contextmanager
def undone_on_failure() -> Iterator[None]:
    """Run work whose database changes roll back if it raises: what it noted is forgotten too
    (a write that fails, a batch entry that fails inside its savepoint)."""
    trail = _CURRENT.get()
    if trail is None:
        yield
        return
    mark = trail.mark()
    try:
        yield
    except BaseException:
        trail.undo_to(mark)
        raise


def note_interaction(interaction: str) -> None:
    """Record the interaction the handler found (a batch posted where a transaction may be)."""
    trail = _CURRENT.get()
    if trail is not None:
        trail.interaction = interaction


def note_served(resource_type: str, patient_id: str | None) -> None:
    """Note a row served by a requester's read (no-op outside a request)."""
    trail = _CURRENT.get()
    if trail is not None and patient_id is not None:
        trail.served(resource_type, patient_id)


def note_read(resource_type: str, resource_id: str, patient_id: str | None) -> None:
    """Note a resource served by id."""
    trail = _CURRENT.get()
    if trail is not None:
        trail.read.append(f"{resource_type}/{resource_id}")
        if patient_id is not None:
            trail.served(resource_type, patient_id)


def note_written(
    resource_type: str, resource_id: str, version_id: int, patient_id: str | None
) -> None:
    """Note a version written by the request."""
    trail = _CURRENT.get()
    if trail is None:
        return
    trail.written.append(f"{resource_type}/{resource_id}/_history/{version_id}")
    if patient_id is not None:
        trail.served(resource_type, patient_id)
    if resource_type == "Consent":
        trail.consent_changed = True


def note_outside_relationship(patient_id: str) -> None:
    """Note a write into ``patient_id``'s record made without a care relationship."""
    trail = _CURRENT.get()
    if trail is not None:
        trail.outside_relationship.add(patient_id)
