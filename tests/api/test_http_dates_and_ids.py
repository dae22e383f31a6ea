"""Last-Modified is the HTTP date email.utils gives (on any instant, in any time zone), and
request ids are unique, shaped like UUIDs and different in every process."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

from hypothesis import given
from hypothesis import strategies as st

from register.api.middleware import new_request_id
from register.http_dates import http_date

UUID_SHAPE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
        ),
    )
)
def test_http_date_is_what_email_utils_gives(moment: datetime) -> None:
    assert http_date(moment) == format_datetime(moment.astimezone(UTC), usegmt=True)


def test_request_ids_are_unique_uuid_shaped_and_differ_between_processes() -> None:
    import re

    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.match(UUID_SHAPE, i) for i in ids)
    code = "from register.api.middleware import new_request_id as n; print(n())"
    other = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(other) == 2 and not other & set(ids)


def test_a_read_carries_last_modified_and_a_request_id(client) -> None:  # type: ignore[no-untyped-def]
    import re

    created = client.post("/fhir/Patient", json={"resourceType": "Patient"})
    read = client.get(f"/fhir/Patient/{created.json()['id']}")
    updated = datetime.fromisoformat(read.json()["meta"]["lastUpdated"].replace("Z", "+00:00"))
    assert read.headers["last-modified"] == format_datetime(updated.astimezone(UTC), usegmt=True)
    assert re.match(UUID_SHAPE, read.headers["x-request-id"])
