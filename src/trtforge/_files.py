"""File helpers: atomic writes and digests."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from trtforge.errors import TrtforgeError


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    An exception (or an interrupt) leaves the old file, or none, and removes the temporary.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrtforgeError(f"cannot create output folder {folder}: {exc.strerror}") from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def existing_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path, or a user error naming ``what`` was expected there."""
    p = Path(path)
    if not p.exists():
        raise TrtforgeError(f"{what} not found: {p}")
    if not p.is_file():
        raise TrtforgeError(f"{what} must be a file, but {p} is a {'folder' if p.is_dir() else 'special file'}")
    if not os.access(p, os.R_OK):
        raise TrtforgeError(f"{what} is not readable: {p} (check its permissions)")
    return p
