"""Commit operations: what a commit adds, deletes or copies (huggingface_hub's names).

A `CommitOperationAdd` reads its source in one streamed pass for its size, SHA-256, git blob id
and the 512-byte sample the preupload check needs; it never holds a file on disk in memory.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "CommitOperation",
    "CommitOperationAdd",
    "CommitOperationCopy",
    "CommitOperationDelete",
    "FileSlice",
]

_CHUNK = 1024 * 1024


def _clean_path(path: str) -> str:
    cleaned = path.replace("\\", "/")
    while cleaned.startswith(("./", "/")):
        cleaned = cleaned[2:] if cleaned.startswith("./") else cleaned[1:]
    parts = cleaned.split("/")
    if not cleaned or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"Invalid path in repo {path!r}: no empty, '.' or '..' segments.")
    if parts[0] in (".git", ".cache"):
        raise ValueError(
            f"Invalid path in repo {path!r}: nothing may be written under {parts[0]}/."
        )
    return cleaned


class FileSlice(io.RawIOBase):
    """A read-only window ``[start, start + length)`` of a file on disk, streamed.

    Multipart LFS uploads send a large file in such parts; `CommitScheduler` uploads a growing
    file as a slice from 0 to its size when scanned, so bytes appended during the upload wait
    for the next commit. The file is open only while it is being read (it closes at the end of
    the window), so a commit of 100,000 slices does not hold 100,000 open files.
    """

    def __init__(self, path: str | Path, start: int, length: int) -> None:
        self.path = Path(path)
        self.start = start
        available = max(0, os.stat(self.path).st_size - start)
        self._length, self._pos = min(length, available), 0
        self._file: BinaryIO | None = None

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return f"FileSlice({str(self.path)!r}, start={self.start}, length={self._length})"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        left = self._length - self._pos
        if size is None or size < 0 or size > left:
            size = left
        if size == 0:
            self._release()
            return b""
        if self._file is None:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed by _release()
            self._file.seek(self.start + self._pos)
        data = self._file.read(size)
        self._pos += len(data)
        if self._pos >= self._length or not data:
            self._release()
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, min(self._length, base + offset))
        if self._file is not None:
            self._file.seek(self.start + self._pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def _release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        self._release()
        super().close()


@dataclass
class CommitOperationAdd:
    """Add or replace `path_in_repo` with a local file, bytes, or a binary file object."""

    path_in_repo: str
    path_or_fileobj: str | Path | bytes | BinaryIO
    _digest: tuple[int, str, str, bytes] | None = field(default=None, init=False, repr=False)
    upload_mode: str | None = field(default=None, init=False)
    should_ignore: bool = field(default=False, init=False)
    remote_oid: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.path_in_repo = _clean_path(self.path_in_repo)
        source = self.path_or_fileobj
        if isinstance(source, (str, Path)):
            if not Path(source).is_file():
                raise ValueError(f"{str(source)!r} is not a file to upload.")
            self.path_or_fileobj = Path(source)

    def open(self) -> BinaryIO:
        source = self.path_or_fileobj
        if isinstance(source, Path):
            return open(source, "rb")
        if isinstance(source, bytes):
            return io.BytesIO(source)
        source.seek(0)
        return source

    def _chunks(self) -> Iterator[bytes]:
        handle = self.open()
        try:
            while chunk := handle.read(_CHUNK):
                yield chunk
        finally:
            self._done_with(handle)

    def _done_with(self, handle: BinaryIO) -> None:
        # Close what we opened; a caller's own file object stays open.
        if isinstance(self.path_or_fileobj, Path):
            handle.close()

    def read_all(self) -> bytes:
        """The whole content (for regular files, which are small)."""
        handle = self.open()
        try:
            return handle.read()
        finally:
            self._done_with(handle)

    def digest(self) -> tuple[int, str, str, bytes]:
        """(size, sha256, git blob sha1, first 512 bytes), computed in one streamed pass."""
        if self._digest is None:
            size, sha, sample = 0, hashlib.sha256(), b""
            for chunk in self._chunks():
                if len(sample) < 512:
                    sample += chunk[: 512 - len(sample)]
                size += len(chunk)
                sha.update(chunk)
            git = hashlib.sha1(f"blob {size}\0".encode())
            for chunk in self._chunks():
                git.update(chunk)
            self._digest = (size, sha.hexdigest(), git.hexdigest(), sample)
        return self._digest

    @property
    def size(self) -> int:
        return self.digest()[0]

    @property
    def sha256(self) -> str:
        return self.digest()[1]

    @property
    def unchanged(self) -> bool:
        """The repo already has this exact content at this path (from the preupload answer)."""
        if self.remote_oid is None:
            return False
        _, sha, git, _ = self.digest()
        return self.remote_oid == (sha if self.upload_mode == "lfs" else git)


@dataclass
class CommitOperationDelete:
    """Delete a file, or a folder when `is_folder` (default: a path ending with '/')."""

    path_in_repo: str
    is_folder: bool | None = None

    def __post_init__(self) -> None:
        if self.is_folder is None:
            self.is_folder = self.path_in_repo.endswith("/")
        self.path_in_repo = _clean_path(self.path_in_repo.rstrip("/"))


@dataclass
class CommitOperationCopy:
    """Copy a file that is in the repo (at `src_revision`, default the commit's revision)."""

    src_path_in_repo: str
    path_in_repo: str
    src_revision: str | None = None

    def __post_init__(self) -> None:
        self.src_path_in_repo = _clean_path(self.src_path_in_repo)
        self.path_in_repo = _clean_path(self.path_in_repo)


CommitOperation = CommitOperationAdd | CommitOperationDelete | CommitOperationCopy
