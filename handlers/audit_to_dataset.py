"""audit_to_dataset: the audit log, pushed to a dataset on the Hub.

Every audit entry (what the automations did, who, when, at what hourly cost) is appended to a
JSON Lines file, one file per server instance and day (`<day>-<host>-<pid>.jsonl`), in a local
folder that a `CommitScheduler` pushes to the dataset every few minutes (and once more when the
server stops). Every line has the same keys and types, so `datasets.load_dataset(repo_id)` reads
the whole log as one table:

    at (ISO 8601 UTC), actor, action, target, outcome, delivery_id, attempt,
    cost_per_hour (number or null), detail (a JSON string)

The dataset is created private when it does not exist. Appends are append-only, which is what
CommitScheduler expects; files already pushed are not sent again after a restart.

| variable | default | meaning |
| --- | --- | --- |
| AUDIT_TO_DATASET_REPO | (off) | the dataset, e.g. `acme/spacehooks-audit` |
| AUDIT_TO_DATASET_EVERY_MINUTES | 10 | minutes between pushes |
| AUDIT_TO_DATASET_FOLDER | data/audit | the local folder of the JSON Lines files |
| AUDIT_TO_DATASET_PATH_IN_REPO | audit | the folder in the dataset |
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from server import CommitScheduler, HubClient, Router, WebhooksServer
from server.audit import AuditEntry
from server.automations import REPO_ID, AutomationConfig, router_from_env


class Config(AutomationConfig):
    switch: ClassVar[str] = "AUDIT_TO_DATASET_REPO"

    repo: str = Field(alias="AUDIT_TO_DATASET_REPO", pattern=REPO_ID)
    every_minutes: float = Field(10.0, alias="AUDIT_TO_DATASET_EVERY_MINUTES", gt=0)
    folder: Path = Field(Path("data/audit"), alias="AUDIT_TO_DATASET_FOLDER")
    path_in_repo: str = Field("audit", alias="AUDIT_TO_DATASET_PATH_IN_REPO")


class JsonLinesSink:
    """Appends audit entries to `<folder>/<day>-<instance>.jsonl`."""

    def __init__(self, folder: Path, instance: str | None = None) -> None:
        self.folder = folder
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}"
        #: replaced by the CommitScheduler's lock, so a push never reads half a line
        self.lock = threading.Lock()

    def path_for(self, at: float) -> Path:
        return self.folder / f"{time.strftime('%Y-%m-%d', time.gmtime(at))}-{self.instance}.jsonl"

    def __call__(self, entry: AuditEntry) -> None:
        line = json.dumps(entry.json(), sort_keys=True) + "\n"
        with self.lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self.path_for(entry.at).open("a", encoding="utf-8") as f:
                f.write(line)


def build(config: Config) -> Router:
    router = Router()

    @router.on_start
    def push_the_audit_log(server: WebhooksServer, hub: HubClient) -> None:
        sink = JsonLinesSink(config.folder)
        scheduler = CommitScheduler(
            repo_id=config.repo,
            repo_type="dataset",
            folder_path=config.folder,
            path_in_repo=config.path_in_repo,
            every=config.every_minutes,
            private=True,
            allow_patterns="*.jsonl",
            hf_api=hub,
            database=server.db,
        )
        sink.lock = scheduler.lock
        server.audit_sinks.append(sink)

    return router


router = router_from_env(Config, build)
