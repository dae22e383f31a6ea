"""Audit writer processes that break the rules, to measure what each rule costs (benchmarks only).

Started in place of :mod:`register.audit.sidecar` by :mod:`benchmarks.audit_variant_server`,
with ``BENCH_AUDIT_VARIANT`` naming one of:

- ``nocommit``: acknowledges every batch and writes nothing (what the hand-off alone costs);
- ``ackfirst``: acknowledges every batch, then appends and commits it (the same work as the real
  writer, without the read waiting for it: what the commit's latency costs).

Neither may ever run in a register: both answer reads whose audit events are not committed.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence

from register.audit.plan import Alert, PreparedEvent
from register.audit.sidecar import Store, open_store, serve


class NoCommit:
    """Takes every batch and keeps nothing."""

    def append(self, events: Sequence[PreparedEvent], alerts: Sequence[Sequence[Alert]]) -> None:
        """Nothing."""

    def after_ack(self) -> None:
        """Nothing."""

    def close(self) -> None:
        """Nothing."""


class AckFirst:
    """Holds each batch until it has been acknowledged, then appends it to the real store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._held: list[tuple[Sequence[PreparedEvent], Sequence[Sequence[Alert]]]] = []

    def append(self, events: Sequence[PreparedEvent], alerts: Sequence[Sequence[Alert]]) -> None:
        """Hold the batch (the writer acknowledges it as soon as this returns)."""
        self._held.append((events, alerts))

    def after_ack(self) -> None:
        """Append and commit what was acknowledged, then the store's own upkeep."""
        held, self._held = self._held, []
        for events, alerts in held:
            self._store.append(events, alerts)
        self._store.after_ack()

    def close(self) -> None:
        """Commit what is held, then close the store."""
        self.after_ack()
        self._store.close()


def main() -> None:
    """Entry point: the real writer's loop over the variant's store."""
    variant = os.environ["BENCH_AUDIT_VARIANT"]
    sock = socket.socket(fileno=int(os.environ["REGISTER_AUDIT_FD"]))
    real = open_store(json.loads(os.environ["REGISTER_AUDIT_TARGET"]))
    store: Store = NoCommit() if variant == "nocommit" else AckFirst(real)
    try:
        serve(sock, store)
    finally:
        store.close()
        real.close()
        sock.close()


if __name__ == "__main__":
    main()
