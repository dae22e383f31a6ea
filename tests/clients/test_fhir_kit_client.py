"""fhir-kit-client (npm) against a real server, when node is installed.

The package is installed from the npm registry into a temporary folder at test time; the test
is skipped only when ``node``/``npm`` are absent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.clients.flows import NHS, hba1c, patient, transaction

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def fhir_kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with fhir-kit-client installed and the flow script beside it."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed")
    folder = tmp_path_factory.mktemp("fhir-kit-client")
    (folder / "package.json").write_text('{"name": "register-client-tests", "private": true}')
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", "fhir-kit-client@2"],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=300,
    )
    shutil.copy(HERE / "fhir_kit_flow.mjs", folder / "flow.mjs")
    return folder


def test_main_flows(fhir_kit: Path, live_base: str, live_token: str, tmp_path: Path) -> None:
    flows = {
        "patient": patient("9000000009"),
        "identifier": f"{NHS}|9000000009",
        "observations": [hba1c("x", day) for day in (3, 1, 2, 5, 4, 7, 6, 9, 8)],
        "transaction": transaction("9000000017"),
    }
    flows_file = tmp_path / "flows.json"
    flows_file.write_text(json.dumps(flows))
    done = subprocess.run(
        ["node", str(fhir_kit / "flow.mjs"), live_base, str(flows_file), live_token],
        cwd=fhir_kit,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["createdVersion"] == "1" and result["updatedVersion"] == "2"
    assert result["gender"] == "female"
    assert result["seen"] == [f"2024-01-{day:02d}" for day in range(1, 10)]
    assert len(result["nextLinks"]) == 2
    assert all(link.startswith(live_base + "/Observation?") for link in result["nextLinks"])
    assert result["byNhs"] == [result["patientId"]]
    assert result["compartmentTotal"] == 9
    assert result["transactionType"] == "transaction-response"
    assert [s[:3] for s in result["transactionStatuses"]] == ["201", "201"]
    assert result["everythingTypes"] == ["Observation", "Patient", "Provenance"]
    # 9 Observations, the Patient, and a Provenance for each of the Patient's 2 versions
    assert result["everythingCount"] == 12
