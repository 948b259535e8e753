"""audit_to_dataset end to end: automations act on the sandbox, their audit entries become JSON
Lines that a CommitScheduler pushes to a private dataset, one table with one schema."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from handlers import audit_to_dataset, gpu_on_update
from server import ConfigError, Router
from tests.automation import running
from tests.procs import wait_until
from tests.test_handlers_gpu_on_update import WATCHED, commit, requested
from tests.test_handlers_gpu_on_update import config as gpu_config

COLUMNS = [
    "action",
    "actor",
    "at",
    "attempt",
    "cost_per_hour",
    "delivery_id",
    "detail",
    "outcome",
    "target",
]


def test_off_unless_configured() -> None:
    assert audit_to_dataset.Config.from_env({}) is None
    with pytest.raises(ConfigError, match="AUDIT_TO_DATASET_EVERY_MINUTES='0'"):
        audit_to_dataset.Config.from_env(
            {"AUDIT_TO_DATASET_REPO": "demo/audit", "AUDIT_TO_DATASET_EVERY_MINUTES": "0"}
        )


def test_the_audit_log_lands_in_a_private_dataset_as_one_table(sandbox_hub, tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    config = audit_to_dataset.Config.from_env(
        {
            "AUDIT_TO_DATASET_REPO": "demo/audit",
            "AUDIT_TO_DATASET_EVERY_MINUTES": "0.005",  # 0.3 s
            "AUDIT_TO_DATASET_FOLDER": str(folder),
        }
    )
    router = Router()
    router.include(gpu_on_update.build(gpu_config()))
    router.include(audit_to_dataset.build(config))
    with running(sandbox_hub, router, tmp_path / "db", WATCHED) as server:
        commit(sandbox_hub)
        wait_until(lambda: requested(sandbox_hub) == "t4-small")
        wait_until(lambda: len(server.audit()) == 2)
        wait_until(
            lambda: (
                sandbox_hub.sandbox.state.repo("dataset", "demo/audit") is not None
                and any(p.endswith(".jsonl") for p in sandbox_hub.files("demo/audit", "dataset"))
            )
        )
        wait_until(lambda: len(rows(sandbox_hub)) == 2)
        recorded = server.audit()
    assert sandbox_hub.sandbox.state.repo("dataset", "demo/audit").private
    (name,) = [p for p in sandbox_hub.files("demo/audit", "dataset") if p.endswith(".jsonl")]
    day = time.strftime("%Y-%m-%d", time.gmtime(recorded[0]["at"]))
    assert name.startswith(f"audit/{day}-") and name.endswith(f"-{os.getpid()}.jsonl")

    table = rows(sandbox_hub)
    assert sorted(table.columns) == COLUMNS
    assert list(table["action"]) == ["add_space_variable", "request_space_hardware"]
    assert list(table["cost_per_hour"].isna()) == [True, False]
    assert table["cost_per_hour"].iloc[1] == 0.40
    assert json.loads(table["detail"].iloc[1])["hardware"] == "t4-small"
    assert set(table["actor"]) == {"gpu_on_update"}


def rows(sandbox_hub) -> pd.DataFrame:
    files = sandbox_hub.files("demo/audit", "dataset")
    text = b"".join(data for path, data in sorted(files.items()) if path.endswith(".jsonl"))
    if not text:
        return pd.DataFrame()
    return pd.read_json(io.BytesIO(text), lines=True, dtype=False)
