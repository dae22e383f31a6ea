"""The audit chain catches any single edit, deletion, insertion or swap of stored events."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, select, update

from auth.policy import BreakGlassClaim
from auth.principal import Principal, PurposeOfUse, Role
from auth.scopes import parse_scopes
from register.audit.chain import PreparedEvent, link_hash, verify
from register.audit.events import break_glass_event, rest_event, token_event
from register.audit.plan import content_of
from register.audit.recorder import append_events, forget_relationships
from register.audit.review_queue import mark_reviewed
from register.audit.schema import audit_entity_table, audit_review_table
from register.audit.trail import Trail
from register.audit.writer import AuditWriter
from register.db import Database, read_transaction, write_transaction
from register.schema import audit_head_table, audit_patient_table, audit_table

SYSTEM = Principal(
    role=Role.SYSTEM,
    subject="hospital-ehr",
    client_id="hospital-ehr",
    scopes=parse_scopes("system/*.rs"),
    organisation="ORG01",
    token_id="t1",
)
CLINICIAN = Principal(
    role=Role.CLINICIAN,
    subject="dr-a",
    client_id="ehr",
    scopes=parse_scopes("user/*.rs"),
    fhir_user="Practitioner/h1",
    organisation="HOS03",
    purpose_of_use=PurposeOfUse.TREAT,
)
OFFICER = Principal(
    role=Role.PRIVACY_OFFICER,
    subject="po-1",
    client_id="portal",
    scopes=parse_scopes("user/AuditEvent.rs"),
    fhir_user="Practitioner/po1",
)
CLAIM = BreakGlassClaim("unconscious on arrival", PurposeOfUse.BTG, 60, "dr-a")


def event(n: int, patients: tuple[str, ...] = ()) -> PreparedEvent:
    """A system's read of ``patients``' data, as the register records it."""
    trail = Trail()
    for patient in patients:
        trail.served("Observation", patient)
    return rest_event(
        interaction="read" if len(patients) < 2 else "search-type",
        status=200,
        principal=replace(SYSTEM, fhir_user=f"Device/x{n}"),
        break_glass=None,
        trail=trail,
        target=f"Observation/o{n}",
        query=None,
        request_id=f"req-{n}",
        address="127.0.0.1",
    )


def mixed_event(n: int) -> PreparedEvent:
    """The ``n``th event of a log with every kind the register records: reads and searches,
    a refused read, writes without a care relationship (queued for review), break-glass starts
    (queued), token requests and client registrations."""
    patient = f"p{n % 3}"
    trail = Trail()
    trail.served("Observation", patient)
    match n % 6:
        case 0:
            return event(n, (patient,))
        case 1:
            trail.served("Condition", f"p{(n + 1) % 3}")
            trail.read = [f"Observation/o{n}", f"Condition/c{n}", f"Patient/{patient}"]
            return rest_event(
                interaction="search-type",
                status=200,
                principal=CLINICIAN,
                break_glass=None,
                trail=trail,
                target=None,
                query="code=4548-4",
                request_id=f"req-{n}",
                address=None,
            )
        case 2:
            trail.written = [f"Observation/w{n}/_history/1"]
            trail.outside_relationship = {patient}
            return rest_event(
                interaction="create",
                status=201,
                principal=replace(SYSTEM, purpose_of_use=PurposeOfUse.TREAT),
                break_glass=None,
                trail=trail,
                target="Observation",
                query=None,
                request_id=f"req-{n}",
                address=None,
            )
        case 3:
            return break_glass_event(CLINICIAN, CLAIM, patient, n, f"req-{n}")
        case 4:
            return token_event(
                principal=CLINICIAN if n % 2 else None,
                client_id="ehr",
                grant_type="client_credentials",
                error=None if n % 2 else "invalid_client",
                request_id=None,
                address="127.0.0.1",
            )
        case _:
            return rest_event(
                interaction="read",
                status=403,
                principal=CLINICIAN,
                break_glass=None,
                trail=Trail(),
                target=f"Patient/{patient}",
                query=None,
                request_id=f"req-{n}",
                address=None,
                detail="no care relationship",
            )


def reset(engine: Engine) -> None:
    forget_relationships()
    with write_transaction(engine) as conn:
        for table in (audit_review_table, audit_entity_table, audit_patient_table):
            conn.execute(delete(table))
        conn.execute(delete(audit_table))
        conn.execute(delete(audit_head_table))


def fill(engine: Engine, count: int) -> None:
    with write_transaction(engine) as conn:
        append_events(conn, [event(i, (f"p{i % 3}",)) for i in range(count)])


def fill_mixed(engine: Engine, count: int) -> None:
    """A log of ``count`` events of every kind, and the first queued one reviewed."""
    with write_transaction(engine) as conn:
        append_events(conn, [mixed_event(i) for i in range(count)])
        first = conn.execute(select(audit_table.c.event_id).where(audit_table.c.seq == 3))
        mark_reviewed(
            conn, first.scalar_one(), verdict="inappropriate", note="not caring", reviewer=OFFICER
        )


def check(engine: Engine):
    with read_transaction(engine) as conn:
        return verify(conn)


def test_intact_chain_verifies(engine):
    reset(engine)
    fill(engine, 25)
    with write_transaction(engine) as conn:
        append_events(conn, [event(100)])
    report = check(engine)
    assert report.intact and report.checked == 26
    with read_transaction(engine) as conn:
        patients = conn.execute(select(audit_patient_table.c.patient_id)).scalars().all()
    assert sorted(set(patients)) == ["p0", "p1", "p2"]


def test_intact_mixed_log_verifies_with_its_review_queue(engine):
    reset(engine)
    fill_mixed(engine, 14)
    report = check(engine)
    assert report.intact, report.problems
    assert report.checked == 15  # and the review
    with read_transaction(engine) as conn:
        queue = conn.execute(
            select(audit_review_table.c.seq, audit_review_table.c.status).order_by(
                audit_review_table.c.seq
            )
        ).all()
        entities = set(conn.execute(select(audit_entity_table.c.reference)).scalars())
    # Searches and writes with no care relationship, and break-glass starts, are queued;
    # event 3 (a write) was reviewed.
    queued = [n + 1 for n in range(14) if n % 6 in (1, 2, 3)]
    assert [tuple(row) for row in queue] == [
        (seq, "inappropriate" if seq == 3 else "open") for seq in queued
    ]
    assert {"break-glass-grant/3", "Condition/c1", "Observation/w2/_history/1"} <= entities


TAMPERING = st.sampled_from(
    [
        "edit",
        "delete",
        "insert",
        "insert-middle",
        "swap",
        "swap-rows",
        "truncate",
        "rehash-edit",
        "column-edit",
        "patient-row-delete",
        "patient-row-insert",
        "entity-row-delete",
        "entity-row-insert",
        "review-row-delete",
        "review-row-insert",
        "review-row-edit",
        "head-edit",
    ]
)
EVENT_COLUMNS = (
    "event_id",
    "recorded",
    "kind",
    "action",
    "outcome",
    "agent_role",
    "agent_who",
    "agent_org",
    "client_id",
    "purpose",
    "break_glass",
    "request_id",
)
REVIEW_COLUMNS = (
    "category",
    "patient_id",
    "reason",
    "recorded",
    "status",
    "note",
    "reviewer",
    "reviewed_at",
)
REQUIRED = {"event_id", "recorded", "kind", "action", "outcome", "category", "status"}
SWAPS = {
    "kind": ("rest", "token"),
    "outcome": ("0", "4"),
    "agent_role": ("clinician", "admin"),
    "purpose": ("TREAT", "BTG"),
    "category": ("no-relationship", "break-glass"),
    "status": ("open", "appropriate"),
}


def other_value(column: str, current: object, to_none: bool) -> object:
    """A different value for ``column`` that a forger might write: empty it (when ``to_none``
    and the column may be empty), or change it."""
    if to_none and current is not None and column not in REQUIRED and column != "break_glass":
        return None
    if isinstance(current, datetime):
        return current + timedelta(seconds=1)
    if column in ("recorded", "reviewed_at"):
        return datetime.now(UTC)
    if column == "break_glass":
        return not current
    if column in SWAPS:
        first, second = SWAPS[column]
        return second if current == first else first
    return f"{current or ''}forged"


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(kind=TAMPERING, size=st.integers(min_value=4, max_value=14), data=st.data())
def test_any_single_tampering_is_caught(engine, kind, size, data):
    """Any one edit of anything stored (an event's bytes or hash, any of its columns, its
    patient, entity or review-queue rows, the head), any deletion, insertion or reordering, is
    reported at the event concerned (or the one after it, or the head)."""
    reset(engine)
    fill_mixed(engine, size)
    size += 1  # the review of event 3
    target = data.draw(st.integers(min_value=1, max_value=size))
    T = audit_table
    R = audit_review_table
    N = audit_entity_table
    extra: set[int] = set()
    with write_transaction(engine) as conn:
        row = conn.execute(select(T).where(T.c.seq == target)).one()
        queued = sorted(conn.execute(select(R.c.seq)).scalars())
        if kind == "edit":
            changed = row.content.replace(b'"resourceType":"AuditEvent"', b'"resourceType":"X"')
            assert changed != row.content
            conn.execute(update(T).where(T.c.seq == target).values(content=changed))
        elif kind == "column-edit":
            # e.g. moving an event to another organisation's view, or hiding it from a
            # patient's access log by changing its kind or role; hashes untouched
            column = data.draw(st.sampled_from(EVENT_COLUMNS))
            value = other_value(column, getattr(row, column), data.draw(st.booleans()))
            conn.execute(update(T).where(T.c.seq == target).values({column: value}))
        elif kind == "patient-row-delete":
            # hiding an access from the patient's access log
            named = conn.execute(select(audit_patient_table.c.seq)).scalars()
            target = data.draw(st.sampled_from(sorted(set(named))))
            conn.execute(delete(audit_patient_table).where(audit_patient_table.c.seq == target))
        elif kind == "patient-row-insert":
            conn.execute(insert(audit_patient_table).values(seq=target, patient_id="someone"))
        elif kind == "entity-row-delete":
            named = conn.execute(select(N.c.seq)).scalars()
            target = data.draw(st.sampled_from(sorted(set(named))))
            conn.execute(delete(N).where(N.c.seq == target))
        elif kind == "entity-row-insert":
            conn.execute(insert(N).values(seq=target, reference="Observation/forged"))
        elif kind == "review-row-delete":
            # hiding a break-glass use (or an access without a relationship) from review
            target = data.draw(st.sampled_from(queued))
            conn.execute(delete(R).where(R.c.seq == target))
        elif kind == "review-row-insert":
            target = data.draw(
                st.integers(min_value=1, max_value=size + 3).filter(lambda s: s not in queued)
            )
            conn.execute(
                insert(R).values(
                    seq=target,
                    category="no-relationship",
                    patient_id="p0",
                    reason="forged",
                    recorded=datetime.now(UTC),
                    status="open",
                )
            )
        elif kind == "review-row-edit":
            # e.g. quietly closing a review, or reopening one that found misuse
            target = data.draw(st.sampled_from(queued))
            review = conn.execute(select(R).where(R.c.seq == target)).one()
            column = data.draw(st.sampled_from(REVIEW_COLUMNS))
            value = other_value(column, getattr(review, column), data.draw(st.booleans()))
            conn.execute(update(R).where(R.c.seq == target).values({column: value}))
        elif kind == "head-edit":
            head = audit_head_table
            conn.execute(update(head).values(seq=head.c.seq - 1))
        elif kind == "insert-middle":
            # a forged event slid in after ``target``, later events renumbered, its own hash
            # computed correctly by the forger
            conn.execute(update(T).where(T.c.seq > target).values(seq=T.c.seq + 1000))
            conn.execute(update(T).where(T.c.seq > 1000).values(seq=T.c.seq - 999))
            forged = content_of(event(777))
            values = {c: getattr(row, c) for c in row._fields}
            values.update(
                seq=target + 1,
                event_id="forged",
                content=forged,
                prev_hash=row.hash,
                hash=link_hash(target + 1, row.hash, forged),
            )
            conn.execute(insert(T).values(**values))
        elif kind == "swap-rows":
            other = data.draw(
                st.integers(min_value=1, max_value=size).filter(lambda s: s != target)
            )
            low, high = sorted((target, other))
            extra.add(low)
            conn.execute(update(T).where(T.c.seq == low).values(seq=-1))
            conn.execute(update(T).where(T.c.seq == high).values(seq=low))
            conn.execute(update(T).where(T.c.seq == -1).values(seq=high))
        elif kind == "rehash-edit":
            # An attacker who also recomputes this event's own hash still breaks the next link.
            changed = row.content + b" "
            conn.execute(
                update(T)
                .where(T.c.seq == target)
                .values(content=changed, hash=link_hash(target, row.prev_hash, changed))
            )
        elif kind == "delete":
            conn.execute(delete(T).where(T.c.seq == target))
        elif kind == "insert":
            values = {c: getattr(row, c) for c in row._fields}
            values.update(seq=size + 10, event_id="forged")
            conn.execute(insert(T).values(**values))
        elif kind == "swap":
            other = data.draw(
                st.integers(min_value=1, max_value=size).filter(lambda s: s != target)
            )
            first = conn.execute(select(T.c.content).where(T.c.seq == target)).scalar_one()
            second = conn.execute(select(T.c.content).where(T.c.seq == other)).scalar_one()
            conn.execute(update(T).where(T.c.seq == target).values(content=second))
            conn.execute(update(T).where(T.c.seq == other).values(content=first))
        elif kind == "truncate":
            conn.execute(delete(T).where(T.c.seq >= target))
    report = check(engine)
    assert not report.intact, kind
    if kind == "head-edit":
        assert any("head" in problem for problem in report.problems), report.problems
        return
    # The report says where: at the event tampered with, the one after it, or the head.
    places = {f"event {n}:" for n in (target, target + 1, target + 2, size + 10, *extra)}
    assert any(
        any(p in problem for p in places) or "head" in problem for problem in report.problems
    ), report.problems


def test_group_commit_writer_commits_every_event(engine):
    reset(engine)
    db = Database(engine)
    writer = AuditWriter(db)

    async def many() -> None:
        await asyncio.gather(*(writer.record(event(i)) for i in range(200)))

    asyncio.run(many())
    writer.record_blocking(event(999))
    writer.close()
    report = check(engine)
    assert report.intact and report.checked == 201


def test_writer_refuses_when_the_log_cannot_be_written(engine, monkeypatch):
    """The writer process cannot commit (its database cannot be opened): every waiting read is
    refused, nothing is appended."""
    from register.audit import writer as writer_module

    reset(engine)
    writer = AuditWriter(Database(engine))
    monkeypatch.setattr(
        writer_module,
        "target_of",
        lambda db: {"kind": "sqlite", "path": "/nonexistent/register/audit.sqlite3"},
    )

    async def two() -> list[BaseException | None]:
        return await asyncio.gather(
            writer.record(event(1)), writer.record(event(2)), return_exceptions=True
        )

    outcomes = asyncio.run(two())
    writer.close()
    assert all(isinstance(o, writer_module.AuditUnavailable) for o in outcomes), outcomes
    assert check(engine).checked == 0


def test_writer_refuses_reads_in_flight_when_its_process_dies_then_recovers(engine, monkeypatch):
    """The writer process is killed while reads wait: they are refused (never answered as if
    recorded); after the pause a new process commits again and the chain stays intact."""
    from register.audit import writer as writer_module

    reset(engine)
    monkeypatch.setattr(writer_module, "RESTART_PAUSE_SECONDS", 0.2)
    writer = AuditWriter(Database(engine))

    async def scenario() -> tuple[list[BaseException | None], int]:
        await writer.record(event(1))  # the process is up
        link = writer._link
        assert link is not None
        link.process.send_signal(signal.SIGSTOP)  # it cannot commit what arrives now
        waiting = [asyncio.ensure_future(writer.record(event(i))) for i in range(2, 6)]
        await asyncio.sleep(0.2)
        assert not any(w.done() for w in waiting)  # not answered before committed
        link.process.kill()
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        await asyncio.sleep(0.3)
        await writer.record(event(6))  # a new writer process
        return outcomes, link.process.pid

    outcomes, old_pid = asyncio.run(scenario())
    assert writer._link is None or writer._link.process.pid != old_pid
    writer.close()
    assert all(isinstance(o, writer_module.AuditUnavailable) for o in outcomes), outcomes
    report = check(engine)
    assert report.intact and report.checked == 2


def test_writer_keeps_one_batch_in_flight_and_ships_the_rest_together(engine, monkeypatch):
    """Group commit: while the writer process commits a batch, events that arrive (over several
    turns of the loop) wait and go as one batch when it acknowledges; none is answered before its
    own batch is committed."""
    from register.audit import writer as writer_module

    reset(engine)
    sent: list[int] = []
    real_send = writer_module._Link.send

    def counting_send(self: writer_module._Link, data: bytes) -> None:
        sent.append(len(data))
        real_send(self, data)

    monkeypatch.setattr(writer_module._Link, "send", counting_send)
    writer = AuditWriter(Database(engine))

    async def scenario() -> None:
        await writer.record(event(1))  # the process is up
        link = writer._link
        assert link is not None and len(sent) == 1
        link.process.send_signal(signal.SIGSTOP)  # it cannot commit what arrives now
        first = asyncio.ensure_future(writer.record(event(2)))
        await asyncio.sleep(0.05)
        assert len(sent) == 2  # shipped at once: nothing was in flight
        later = []
        for n in range(3, 8):  # one per turn of the loop, while event 2 is being committed
            later.append(asyncio.ensure_future(writer.record(event(n))))
            await asyncio.sleep(0.01)
        assert len(sent) == 2  # held back
        assert not first.done() and not any(w.done() for w in later)
        link.process.send_signal(signal.SIGCONT)
        await asyncio.wait_for(asyncio.gather(first, *later), timeout=10)
        assert len(sent) == 3  # events 3-7 went as one batch

    asyncio.run(scenario())
    writer.close()
    report = check(engine)
    assert report.intact and report.checked == 7


async def stall_with_one_in_flight(writer: AuditWriter):  # type: ignore[no-untyped-def]
    """Start the writer process (event 1), stop it, and put event 2 in flight: the link and the
    request waiting for event 2."""
    await writer.record(event(1))
    link = writer._link
    assert link is not None
    link.process.send_signal(signal.SIGSTOP)  # it cannot commit what arrives now
    in_flight = asyncio.ensure_future(writer.record(event(2)))
    await asyncio.sleep(0.05)
    return link, in_flight


def test_events_held_back_are_refused_when_the_writer_process_dies(engine, monkeypatch):
    """Events waiting behind a batch in flight are refused, not left hanging, when the writer
    process dies before acknowledging it."""
    from register.audit import writer as writer_module

    reset(engine)
    monkeypatch.setattr(writer_module, "RESTART_PAUSE_SECONDS", 5.0)
    writer = AuditWriter(Database(engine))

    async def scenario() -> list[BaseException | None]:
        link, in_flight = await stall_with_one_in_flight(writer)
        held = [asyncio.ensure_future(writer.record(event(n))) for n in (3, 4)]
        await asyncio.sleep(0.05)
        link.process.kill()
        return await asyncio.wait_for(
            asyncio.gather(in_flight, *held, return_exceptions=True), timeout=10
        )

    outcomes = asyncio.run(scenario())
    writer.close()
    assert all(isinstance(o, writer_module.AuditUnavailable) for o in outcomes), outcomes
    assert check(engine).checked == 1


def test_shutdown_waits_for_events_held_back(engine):
    """At shutdown, events held back behind the batch in flight are committed and their requests
    released as recorded, not refused."""
    reset(engine)
    writer = AuditWriter(Database(engine))

    async def scenario() -> list[BaseException | None]:
        link, in_flight = await stall_with_one_in_flight(writer)
        held = asyncio.ensure_future(writer.record(event(3)))
        await asyncio.sleep(0.01)
        link.process.send_signal(signal.SIGCONT)
        await writer.aclose()
        return await asyncio.gather(in_flight, held, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert outcomes == [None, None], outcomes
    report = check(engine)
    assert report.intact and report.checked == 3


def test_cli_verify_reports_tampering(engine, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from register.cli import app
    from register.settings import get_settings

    reset(engine)
    fill(engine, 5)
    monkeypatch.setenv("REGISTER_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        ok = runner.invoke(app, ["audit", "verify"])
        assert ok.exit_code == 0 and "5 events verified" in ok.output
        with write_transaction(engine) as conn:
            conn.execute(delete(audit_table).where(audit_table.c.seq == 3))
        bad = runner.invoke(app, ["audit", "verify"])
        assert bad.exit_code == 1
        assert "event 4" in bad.output and "missing" in bad.output
    finally:
        get_settings.cache_clear()


def test_the_writer_checkpoints_its_log_after_acknowledging(tmp_path) -> None:
    """The writer process checkpoints the write-ahead log outside its commits, after the batch
    is acknowledged: a read is never held for a checkpoint, and the log does not grow without
    bound (without any checkpoint, 2,000 events leave a log of several thousand pages)."""
    import socket
    import threading

    from register.audit import sidecar
    from register.audit.plan import to_wire
    from register.db import create_db_engine
    from register.migrate import upgrade

    path = tmp_path / "audit.sqlite3"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()

    store = sidecar.SqliteStore(str(path))
    steps: list[str] = []
    ours, theirs = socket.socketpair()
    real_after_ack = store.after_ack

    def after_ack() -> None:
        steps.append("after ack")
        real_after_ack()

    class Recorded:  # the writer's end of the socket, noting when acknowledgements leave
        def setblocking(self, flag: bool) -> None:
            theirs.setblocking(flag)

        def recv(self, size: int) -> bytes:
            return theirs.recv(size)

        def sendall(self, data: bytes) -> None:
            steps.append("ack")
            theirs.sendall(data)

    store.after_ack = after_ack  # type: ignore[method-assign]

    def serve() -> None:
        try:
            sidecar.serve(Recorded(), store)  # type: ignore[arg-type]
        finally:
            store.close()

    served = threading.Thread(target=serve, daemon=True)
    served.start()
    frames = sidecar.Frames()
    try:
        for number in range(200):
            batch = [to_wire(event(number * 10 + i, (f"p{i}",))) for i in range(10)]
            ours.sendall(sidecar.frame((number, batch, [[] for _ in batch])))
            acks: list = []
            while not acks:
                acks = [a for message in frames.feed(ours.recv(1 << 20)) for a in message]
            assert acks == [(number, None)]
        wal = path.with_name(path.name + "-wal")  # measured while the writer still has it open
        assert wal.stat().st_size < 2500 * 4120
    finally:
        ours.close()
        served.join(timeout=30)
    assert steps == ["ack", "after ack"] * 200
    engine = create_db_engine(f"sqlite:///{path}")
    with read_transaction(engine) as conn:
        report = verify(conn)
    engine.dispose()
    assert report.intact and report.checked == 2000


def test_checkpoints_run_beside_commits_and_the_log_still_restarts(tmp_path, monkeypatch) -> None:
    """A checkpoint pass runs on its own thread: commits (and so the reads waiting for them) go
    on while it runs. What they appended meanwhile is copied after the next acknowledgement, so
    the following commit starts the log again from its beginning instead of letting it grow for
    as long as the load lasts."""
    import sqlite3
    import threading

    from register.audit import sidecar
    from register.audit.plan import to_wire
    from register.db import create_db_engine
    from register.migrate import upgrade

    path = tmp_path / "audit.sqlite3"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    store = sidecar.SqliteStore(str(path))
    numbers = iter(range(10_000))

    def commit_one() -> None:
        number = next(numbers)
        batch = [to_wire(event(number, (f"p{number % 7}",)))]
        assert sidecar.commit_batches(store, [(number, batch, [[]])]) == [(number, None)]
        store.after_ack()

    def log_frames() -> int:
        probe = sqlite3.connect(path)
        try:
            return int(probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
        finally:
            probe.close()

    copied, release = threading.Event(), threading.Event()
    held_too_long: list[bool] = []
    real_checkpoint = sidecar._checkpoint

    def held_pass(conn: sqlite3.Connection) -> None:
        real_checkpoint(conn)
        if threading.current_thread().name == "audit-checkpoint":
            copied.set()  # the pass has copied the log as it was when it started ...
            held_too_long.append(not release.wait(10))  # ... and has not ended yet

    monkeypatch.setattr(sidecar, "_checkpoint", held_pass)
    try:
        for _ in range(sidecar.CHECKPOINT_EVERY_COMMITS):
            commit_one()  # the last asks for a pass
        assert copied.wait(10)
        for _ in range(5):
            commit_one()  # beside the pass: if a commit waited for it, the pass times out
        release.set()
        store.wait_for_checkpoints()
        assert held_too_long == [False]
        commit_one()  # after the pass: copies what the five appended, before the next commit
        commit_one()
        assert log_frames() < 30, "the log did not start again from its beginning"
    finally:
        store.close()
    engine = create_db_engine(f"sqlite:///{path}")
    with read_transaction(engine) as conn:
        report = verify(conn)
    engine.dispose()
    assert report.intact and report.checked == 57


def test_bytes_that_are_not_an_audit_event_are_reported_not_a_crash(engine):
    """A forger who rewrites the last event and the head with consistent hashes but bytes that
    are not an AuditEvent is reported at that event."""
    reset(engine)
    fill(engine, 4)
    T = audit_table
    with write_transaction(engine) as conn:
        last = conn.execute(select(T).order_by(T.c.seq.desc()).limit(1)).one()
        forged = b"not json at all"
        new_hash = link_hash(last.seq, last.prev_hash, forged)
        conn.execute(update(T).where(T.c.seq == last.seq).values(content=forged, hash=new_hash))
        conn.execute(update(audit_head_table).values(hash=new_hash))
    report = check(engine)
    assert report.problems == [f"event {last.seq}: its bytes are not a readable AuditEvent"]


def test_verify_reads_one_state_while_the_register_goes_on_writing(engine, monkeypatch):
    """``audit verify`` runs beside a live register: between its loading the review queue and
    walking the chain, an access is queued and an entry is reviewed. It checks the log as it
    stood when it started (one snapshot, on PostgreSQL too), and finds it intact."""
    from register.audit import chain

    reset(engine)
    fill_mixed(engine, 6)
    real_rows = chain._rows

    def rows_while_others_write(conn, batch):  # type: ignore[no-untyped-def]
        with write_transaction(engine) as other:
            append_events(other, [break_glass_event(CLINICIAN, CLAIM, "p1", 99, None)])
            open_entry = other.execute(
                select(audit_table.c.event_id).where(audit_table.c.seq == 4)
            ).scalar_one()
            mark_reviewed(
                other, open_entry, verdict="appropriate", note="checked", reviewer=OFFICER
            )
        yield from real_rows(conn, batch)

    monkeypatch.setattr(chain, "_rows", rows_while_others_write)
    report = check(engine)
    assert report.intact, report.problems
    assert report.checked == 7  # the six events and the review before it started
    monkeypatch.undo()
    after = check(engine)
    assert after.intact and after.checked == 9
