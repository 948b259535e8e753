"""CommitScheduler against the sandbox Hub: what is pushed, when, and what a restart re-sends."""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import pytest

from server import CommitScheduler
from server.sandbox.faults import FaultRule

REPO = "demo/logs"


def make(hub, folder: Path, db: Path, **kw) -> CommitScheduler:
    kw.setdefault("every", 60)  # minutes: only the first push is automatic in these tests
    return CommitScheduler(
        repo_id=REPO,
        repo_type="dataset",
        folder_path=folder,
        hf_api=hub.hub,
        database=f"sqlite:///{db}",
        **kw,
    )


def settle(scheduler: CommitScheduler) -> None:
    """Wait for the automatic first push, so each test starts from a pushed folder."""
    deadline = time.monotonic() + 10
    while scheduler.last_future is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert scheduler.last_future is not None
    scheduler.last_future.result(timeout=10)


def test_pushes_new_files_then_nothing_when_nothing_changed(sandbox_hub, tmp_path: Path) -> None:
    folder = tmp_path / "watched"  # created by the scheduler, like the repo
    scheduler = make(sandbox_hub, folder, tmp_path / "db.sqlite")
    try:
        settle(scheduler)
        (folder / "a.jsonl").write_text('{"n": 1}\n')
        (folder / "sub").mkdir()
        (folder / "sub" / "b.csv").write_text("x,y\n1,2\n")
        info = scheduler.trigger().result(timeout=10)
        assert info is not None
        files = sandbox_hub.files(REPO, "dataset")
        assert files["a.jsonl"] == b'{"n": 1}\n' and files["sub/b.csv"] == b"x,y\n1,2\n"
        commits = sandbox_hub.commit_count(REPO, "dataset")

        assert scheduler.trigger().result(timeout=10) is None  # nothing changed: no commit
        assert sandbox_hub.commit_count(REPO, "dataset") == commits
        state = scheduler.state()
        assert (state.last_commit, state.last_files, state.last_bytes) == (info.oid, 2, 17)
        assert state.last_error is None and state.next_run is not None
    finally:
        scheduler.stop()


def test_bytes_appended_during_an_upload_wait_for_the_next_push(
    sandbox_hub, tmp_path: Path
) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    log = folder / "log.jsonl"
    log.write_text("one\n")

    class AppendsDuringUpload(CommitScheduler):
        def scan(self):
            changes = super().scan()
            with log.open("a") as f:  # after the size snapshot, before the upload
                f.write("two\n")
            return changes

    scheduler = AppendsDuringUpload(
        repo_id=REPO,
        repo_type="dataset",
        folder_path=folder,
        every=60,
        hf_api=sandbox_hub.hub,
        database=f"sqlite:///{tmp_path / 'db.sqlite'}",
    )
    try:
        settle(scheduler)
        assert sandbox_hub.files(REPO, "dataset")["log.jsonl"] == b"one\n"
        scheduler.trigger().result(timeout=10)
        assert sandbox_hub.files(REPO, "dataset")["log.jsonl"] == b"one\ntwo\n"
    finally:
        scheduler.stop()


def test_a_restart_uploads_only_what_changed(sandbox_hub, tmp_path: Path) -> None:
    folder, db = tmp_path / "watched", tmp_path / "db.sqlite"
    folder.mkdir()
    for n in range(20):
        (folder / f"part-{n:02}.jsonl").write_text(f'{{"n": {n}}}\n' * 50)
    first = make(sandbox_hub, folder, db)
    settle(first)
    first.stop()
    commits = sandbox_hub.commit_count(REPO, "dataset")
    assert first.state().total_files == 20

    # The process restarts: a new scheduler, the same database. Nothing changed: nothing sent.
    second = make(sandbox_hub, folder, db)
    try:
        settle(second)
        assert sandbox_hub.commit_count(REPO, "dataset") == commits
        assert second.state().total_files == 20  # no file sent a second time
        # A touched file (new mtime, same bytes) is not committed either.
        os.utime(folder / "part-03.jsonl", ns=(time.time_ns(), time.time_ns() + 10**9))
        assert second.trigger().result(timeout=10) is None
        # An appended one is, alone.
        with (folder / "part-07.jsonl").open("a") as f:
            f.write('{"n": "more"}\n')
        assert second.trigger().result(timeout=10) is not None
        state = second.state()
        assert (state.last_files, state.total_files) == (1, 21)
        assert sandbox_hub.files(REPO, "dataset")["part-07.jsonl"].endswith(b'"more"}\n')
    finally:
        second.stop()


def test_patterns_and_path_in_repo(sandbox_hub, tmp_path: Path) -> None:
    folder = tmp_path / "watched"
    (folder / "tmp").mkdir(parents=True)
    (folder / ".git").mkdir()
    (folder / "keep.jsonl").write_text("1\n")
    (folder / "skip.txt").write_text("no\n")
    (folder / "tmp" / "scratch.jsonl").write_text("no\n")
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    scheduler = make(
        sandbox_hub,
        folder,
        tmp_path / "db.sqlite",
        path_in_repo="/logs/",
        allow_patterns=["*.jsonl"],
        ignore_patterns="tmp/",
    )
    try:
        settle(scheduler)
        assert set(sandbox_hub.files(REPO, "dataset")) - {".gitattributes"} == {"logs/keep.jsonl"}
    finally:
        scheduler.stop()


def test_the_database_file_inside_the_folder_is_never_uploaded(sandbox_hub, tmp_path: Path) -> None:
    folder = tmp_path / "data"  # spacehooks' default SQLite path is data/spacehooks.db
    folder.mkdir()
    (folder / "rows.jsonl").write_text("1\n")
    scheduler = make(sandbox_hub, folder, folder / "spacehooks.db")
    try:
        settle(scheduler)
        assert set(sandbox_hub.files(REPO, "dataset")) - {".gitattributes"} == {"rows.jsonl"}
    finally:
        scheduler.stop()


def test_a_failed_push_is_logged_and_retried_at_the_next_tick(
    sandbox_hub, tmp_path: Path, caplog
) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    (folder / "a.jsonl").write_text("1\n")
    # The commit endpoint fails twice; the create-repo call before it is not affected.
    sandbox_hub.sandbox.faults.add(
        FaultRule(path=f"/api/datasets/{REPO}/commit/", status=500, times=2)
    )
    scheduler = make(sandbox_hub, folder, tmp_path / "db.sqlite", every=0.005)  # 0.3 s
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            state = scheduler.state()
            if state.last_commit is not None:
                break
            time.sleep(0.05)
        assert state.last_commit is not None, "the scheduler stopped retrying"
        assert state.last_error is None  # cleared by the success
        assert sandbox_hub.files(REPO, "dataset")["a.jsonl"] == b"1\n"
        failures = [r for r in caplog.records if "push failed" in r.getMessage()]
        assert len(failures) == 2
    finally:
        scheduler.stop()


def test_a_subclass_can_push_its_own_way(sandbox_hub, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()

    class ZipScheduler(CommitScheduler):
        def push_to_hub(self):
            with self.lock:
                pngs = sorted(self.folder_path.glob("*.png"))
            if not pngs:
                return None
            archive = io.BytesIO()
            with zipfile.ZipFile(archive, "w") as z:
                for png in pngs:
                    z.write(png, arcname=png.name)
            info = self.api.upload_file(
                path_or_fileobj=archive.getvalue(),
                path_in_repo=f"{self.path_in_repo}/train.zip",
                repo_id=self.repo_id,
                repo_type=self.repo_type,
                revision=self.revision,
            )
            for png in pngs:
                png.unlink()
            return info

    scheduler = ZipScheduler(
        repo_id=REPO,
        repo_type="dataset",
        folder_path=folder,
        path_in_repo="archives",
        every=60,
        hf_api=sandbox_hub.hub,
        database=f"sqlite:///{tmp_path / 'db.sqlite'}",
    )
    try:
        settle(scheduler)
        assert scheduler.trigger().result(timeout=10) is None  # no image yet
        for n in range(3):
            (folder / f"{n}.png").write_bytes(b"\x89PNG" + bytes([n]))
        info = scheduler.trigger().result(timeout=10)
        names = zipfile.ZipFile(
            io.BytesIO(sandbox_hub.files(REPO, "dataset")["archives/train.zip"])
        ).namelist()
        assert names == ["0.png", "1.png", "2.png"]
        assert scheduler.state().last_commit == info.oid
        assert list(folder.iterdir()) == []
    finally:
        scheduler.stop()


def test_context_manager_pushes_once_more_on_exit(sandbox_hub, tmp_path: Path) -> None:
    folder = tmp_path / "watched"
    with make(sandbox_hub, folder, tmp_path / "db.sqlite") as scheduler:
        settle(scheduler)
        (folder / "late.jsonl").write_text("last words\n")
    assert sandbox_hub.files(REPO, "dataset")["late.jsonl"] == b"last words\n"
    assert scheduler.trigger().result() is None  # stopped: no more pushes


@pytest.mark.parametrize("every", [0, -1, "5", True])
def test_every_must_be_a_positive_number_of_minutes(sandbox_hub, tmp_path: Path, every) -> None:
    with pytest.raises(ValueError, match="every"):
        make(sandbox_hub, tmp_path / "w", tmp_path / "db.sqlite", every=every)


def test_folder_path_must_not_be_a_file(sandbox_hub, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="must be a folder"):
        make(sandbox_hub, tmp_path / "f", tmp_path / "db.sqlite")


def test_file_slices_hold_a_file_open_only_while_reading(tmp_path: Path) -> None:
    from server.client.operations import FileSlice

    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    paths = []
    for n in range(50):
        paths.append(tmp_path / f"{n}.txt")
        paths[-1].write_bytes(b"0123456789" * 3)
    before = open_files()
    slices = [FileSlice(p, 0, 25) for p in paths]  # a commit's worth of changed files
    assert open_files() == before
    first = slices[0]
    assert first.read(10) == b"0123456789" and open_files() == before + 1
    assert first.read() == b"012345678901234" and open_files() == before  # closed at the end
    first.seek(5)
    assert first.read(3) == b"567"  # reopened where it was
    first.close()
    assert open_files() == before


def test_a_push_that_works_clears_the_last_error(sandbox_hub, tmp_path: Path) -> None:
    class FailsOnce(CommitScheduler):
        calls = 0

        def push_to_hub(self):
            FailsOnce.calls += 1
            if FailsOnce.calls == 2:
                raise OSError("disk hiccup")
            return None  # nothing to commit

    scheduler = FailsOnce(
        repo_id=REPO,
        repo_type="dataset",
        folder_path=tmp_path / "w",
        every=60,
        hf_api=sandbox_hub.hub,
        database=f"sqlite:///{tmp_path / 'db.sqlite'}",
    )
    try:
        settle(scheduler)
        with pytest.raises(OSError, match="disk hiccup"):
            scheduler.trigger().result(timeout=10)
        assert scheduler.state().last_error == "OSError: disk hiccup"
        assert scheduler.trigger().result(timeout=10) is None
        assert scheduler.state().last_error is None
    finally:
        scheduler.stop()
