"""CommitScheduler's scan-and-decide step, and what a restart uploads again.

A folder of N small files (default 100,000), all pushed once; then 10 of them are appended to.
Measured, for spacehooks' `CommitScheduler` and huggingface_hub's, in one run:

- the push that finds and commits those 10 files (listing, stat, comparing, hashing the
  changed files, building the operations; the Hub's side is a stub that only reads what it is
  given, so the network is not measured);
- after a restart (a new scheduler object on the same folder; spacehooks keeps its database):
  the files and bytes the first push sends again, with nothing changed.

huggingface_hub's scheduler opens every file it is about to commit before it uploads any
(`PartialFileIO`), so a push of more new files than the open-file limit fails with EMFILE. The
folder is therefore filled and pushed in batches of 10,000 files (as a folder grows over time),
and huggingface_hub's push after a restart, which would send every file again, is reported as
failing when it hits that limit.

    python -m tests.benchmarks.commit_scan [--files 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

CHANGED = 10


class _Sent:
    """What a stub Hub was asked to commit."""

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0


def spacehooks_scheduler(folder: Path, db: Path, sent: _Sent) -> Any:
    from server.client import HubClient
    from server.client.models import CommitInfo, RepoUrl
    from server.commit_scheduler import CommitScheduler

    class StubHub(HubClient):
        def create_repo(self, repo_id: str, **_: Any) -> RepoUrl:  # type: ignore[override]
            return RepoUrl(f"{self.endpoint}/datasets/{repo_id}", repo_id, "dataset")

        def create_commit(self, repo_id: str, operations: Any, **_: Any) -> CommitInfo:  # type: ignore[override]
            for op in operations:
                sent.files += 1
                sent.bytes += op.size  # reads the content, as a real upload would
            return CommitInfo("stub", "Scheduled Commit", "", "0" * 40)

    return CommitScheduler(
        repo_id="bench/scan",
        repo_type="dataset",
        folder_path=folder,
        every=10_000,
        hf_api=StubHub("http://127.0.0.1:9", "hf_unused", env={}),
        database=f"sqlite:///{db}",
    )


def hf_scheduler(folder: Path, sent: _Sent) -> Any:
    from huggingface_hub import CommitScheduler, HfApi
    from huggingface_hub.hf_api import RepoUrl

    class StubApi(HfApi):
        def create_repo(self, repo_id: str, **_: Any) -> RepoUrl:  # type: ignore[override]
            return RepoUrl(f"https://huggingface.co/datasets/{repo_id}")

        def create_commit(self, repo_id: str, operations: Any, **_: Any) -> Any:  # type: ignore[override]
            for op in operations:
                sent.files += 1
                sent.bytes += op.upload_info.size  # hashed when the operation was built
            return None

    return CommitScheduler(
        repo_id="bench/scan",
        repo_type="dataset",
        folder_path=folder,
        every=10_000,
        hf_api=StubApi(token="hf_unused"),
    )


def first_push(scheduler: Any) -> None:
    while getattr(scheduler, "last_future", None) is None:
        time.sleep(0.01)
    scheduler.last_future.result()


BATCH = 10_000


def fill_and_push(root: Path, files: int, scheduler: Any) -> list[Path]:
    """Write `files` small files, 1,000 per folder, pushing after every 10,000."""
    paths = []
    per_dir = 1000
    for d in range(0, files, per_dir):
        sub = root / f"shard-{d // per_dir:04}"
        sub.mkdir()
        for n in range(d, min(files, d + per_dir)):
            path = sub / f"row-{n:06}.jsonl"
            path.write_bytes(b'{"row": %d, "text": "a small record"}\n' % n)
            paths.append(path)
        if len(paths) % BATCH == 0 or len(paths) == files:
            scheduler.push_to_hub()
    return paths


def measure(name: str, files: int, runs: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix=f"scan-{name}-"))
    folder, db = root / "folder", root / "state.db"
    folder.mkdir()
    try:
        sent = _Sent()
        make = (
            (lambda: spacehooks_scheduler(folder, db, sent))
            if name == "spacehooks"
            else (lambda: hf_scheduler(folder, sent))
        )
        scheduler = make()
        first_push(scheduler)  # of the empty folder
        paths = fill_and_push(folder, files, scheduler)  # everything, once
        assert sent.files == files, (name, sent.files)
        timings = []
        for run in range(runs):
            step = files // CHANGED
            for path in (paths[(run * 97 + k * step) % files] for k in range(CHANGED)):
                with path.open("ab") as f:
                    f.write(b'{"appended": true}\n')
            sent.files = sent.bytes = 0
            t0 = time.perf_counter()
            scheduler.push_to_hub()
            timings.append(time.perf_counter() - t0)
            assert sent.files == CHANGED, (name, sent.files)
        scheduler.stop()

        sent.files = sent.bytes = 0  # a restart: a new scheduler, the same folder
        t0 = time.perf_counter()
        restarted = make()
        outcome = "ok"
        try:
            first_push(restarted)
        except OSError as exc:  # huggingface_hub: one open file per file to send
            outcome = f"failed: {exc.strerror}"
            sent.files = len(paths)
            sent.bytes = sum(p.stat().st_size for p in paths)
        restart_s = time.perf_counter() - t0
        restarted.stop()
        return {
            "scan_commit_10_s": statistics.median(timings),
            "restart_files": sent.files,
            "restart_bytes": sent.bytes,
            "restart_push_s": restart_s,
            "restart_outcome": outcome,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    results = {
        name: measure(name, args.files, args.runs) for name in ("spacehooks", "huggingface_hub")
    }
    ours, theirs = results["spacehooks"], results["huggingface_hub"]
    print(f"{args.files:,} files, {CHANGED} appended to; median of {args.runs} pushes")
    print(
        f"{'':<18}{'push 10 changed':>18}{'restart: files':>16}"
        f"{'restart: bytes':>16}{'restart push':>14}"
    )
    for name, r in results.items():
        print(
            f"{name:<18}{r['scan_commit_10_s']:>16.3f} s{r['restart_files']:>16,}"
            f"{r['restart_bytes']:>16,}{r['restart_push_s']:>12.2f} s  {r['restart_outcome']}"
        )
    print(
        f"ratio (spacehooks / huggingface_hub), push of 10 changed: "
        f"{ours['scan_commit_10_s'] / theirs['scan_commit_10_s']:.2f}"
    )


if __name__ == "__main__":
    main()
