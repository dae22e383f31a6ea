"""Benchmark of the pages: a page against the FHIR requests it is built from, same run.

    python -m benchmarks.bench_pages [--workers 1] [--seconds 10]

Loads the demo into a fresh SQLite database, starts ``careregister serve``, signs in through the
sign-in form (a real session cookie), then drives with wrk:

- ``/my`` (the patient's summary) against ``GET /fhir/Patient/{id}/$everything`` with the same
  patient's bearer token: the page makes that call in process, plus the Provenance search and
  the rendering, so the ratio is what the page costs over the API read it needs;
- ``/clinician/patients/{id}`` (the timeline, as the GP) against the same ``$everything`` as the
  GP.

Prints a Markdown table (throughput, p50, p99, ratio page/API).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from pathlib import Path

import httpx

from benchmarks.harness import ROOT, free_port, median_run, register_server, running, temp_dir

PATIENT = "demo-margaret-thompson"


def _session_cookie(root: str, username: str) -> str:
    with httpx.Client(base_url=root) as client:
        form = client.get("/sign-in").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        answer = client.post(
            "/sign-in",
            data={"csrf_token": token.group(1), "username": username, "password": "demo"},
        )
        assert answer.status_code == 303, answer.text
        return f"careregister_session={client.cookies['careregister_session']}"


def _token(root: str, username: str) -> str:
    answer = httpx.post(
        f"{root}/auth/token",
        data={"grant_type": "password", "username": username, "password": "demo"},
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    folder = temp_dir()
    env = {
        "REGISTER_DATA_DIR": str(folder),
        "REGISTER_WEB_ASSETS_DIR": str(ROOT / "var" / "web-assets"),
        "REGISTER_AUTH_TOKEN_LIFETIME_SECONDS": "3600",
        "REGISTER_WEB_SESSION_MINUTES": "120",
        "REGISTER_LOG_LEVEL": "warning",
        "PYTHONPATH": str(ROOT),
    }
    careregister = str(Path(register_server(0, env, 1)[0]))
    for step in (["migrate"], ["demo"]):
        subprocess.run(
            [careregister, *step], env={**os.environ, **env}, check=True, capture_output=True
        )
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    rows = []
    with running(register_server(port, env, args.workers), env, f"{root}/health"):
        everything = f"{root}/fhir/Patient/{PATIENT}/$everything?_count=500"
        cases = [
            ("patient summary `/my`", "margaret", f"{root}/my"),
            ("clinician timeline", "dr.patel", f"{root}/clinician/patients/{PATIENT}"),
        ]
        for label, user, page_url in cases:
            cookie = {"Cookie": _session_cookie(root, user)}
            bearer = {"Authorization": f"Bearer {_token(root, user)}"}
            assert httpx.get(page_url, headers=cookie).status_code == 200
            assert httpx.get(everything, headers=bearer).status_code == 200
            page = median_run(page_url, seconds=args.seconds, headers=cookie, connections=8)
            api = median_run(everything, seconds=args.seconds, headers=bearer, connections=8)
            rows.append((label, user, page, api))
    print("| page | as | page req/s | p50 ms | p99 ms | `$everything` req/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for label, user, page, api in rows:
        print(
            f"| {label} | {user} | {page.rps:.0f} | {page.p50_ms:.1f} | {page.p99_ms:.1f} | "
            f"{api.rps:.0f} | {page.rps / api.rps:.2f} |"
        )


if __name__ == "__main__":
    main()
