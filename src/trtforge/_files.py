"""File helpers: atomic writes, a file and its JSON sidecar as one unit, and digests.

Every output goes through :func:`atomic_path`: written beside the target under a temporary
name, renamed when complete, with the permissions the umask gives (as ``open`` would), and a
failed write (full disk, read-only folder, a folder in the way) is one user error.
:func:`check_outputs` refuses an output that is one of the inputs (path, symlink or hard link).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from trtforge.errors import TrtforgeError

_WRITE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EIO,
}


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _output_folder(target: Path) -> Path:
    if target.is_dir():
        raise TrtforgeError(f"cannot write {target}: it is a folder; give a file name")
    folder = target.parent if str(target.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrtforgeError(f"cannot create output folder {folder}: {exc.strerror}") from None
    return folder


def _write_error(target: Path, exc: OSError) -> TrtforgeError:
    return TrtforgeError(
        f"cannot write {target}: {exc.strerror or exc} (nothing was written; free space or choose a writable location)"
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_temporaries(folder: Path, name: str) -> None:
    """Remove temporaries of ``name`` that a killed writer left (its pid is in their name)."""
    for tmp in folder.glob(f".{glob_escape(name)}.*.tmp"):
        pid = tmp.name[len(name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    An exception (or an interrupt) leaves the old file, or none, and removes the temporary.
    A write that fails for want of space or permission is a :class:`TrtforgeError`.
    """
    target = Path(target)
    folder = _output_folder(target)
    _sweep_temporaries(folder, target.name)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise _write_error(target, exc) from None
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in _WRITE_ERRNOS or exc.filename in (str(tmp), str(target)):
            raise _write_error(target, exc) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], exclusive: bool) -> Iterator[None]:
    """An advisory lock (``flock``) on ``folder``: writers of a pair exclusive, readers shared."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise TrtforgeError(f"cannot open folder {folder}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def _pending(sidecar: Path, digest: str) -> Path:
    return sidecar.with_name(f".{sidecar.name}.{digest}.pending")


def _pendings(sidecar: Path) -> list[Path]:
    return sorted(sidecar.parent.glob(f".{glob_escape(sidecar.name)}.*.pending"))


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def _finish_pending(sidecar: Path, digest: str | None) -> None:
    """After a writer was killed: the sidecar pending for ``digest`` (the file's sha) takes its place."""
    for pending in _pendings(sidecar):
        with contextlib.suppress(OSError):
            if digest is not None and pending == _pending(sidecar, digest):
                os.replace(pending, sidecar)
            else:
                pending.unlink()


def write_pair(target: str | os.PathLike[str], data: bytes, sidecar: str | os.PathLike[str], text: str) -> None:
    """Write ``target`` and its JSON ``sidecar`` as one unit, under an exclusive lock on the folder.

    The order of renames keeps the pair consistent under any single kill: (1) the sidecar goes
    to a pending name that carries the sha256 of ``data``; (2) ``data`` replaces ``target``;
    (3) the pending sidecar replaces ``sidecar``.  Killed after (1), the old pair stands (the
    pending one is stale, swept later); after (2), :func:`read_pair` takes the pending sidecar
    whose sha matches the file.
    """
    target, sidecar = Path(target), Path(sidecar)
    folder = _output_folder(target)
    digest = sha256_bytes(data)
    with folder_lock(folder, exclusive=True):
        _finish_pending(sidecar, sha256_file(target) if target.is_file() and _pendings(sidecar) else None)
        pending = _pending(sidecar, digest)
        try:
            with atomic_path(target) as tmp, atomic_path(pending) as side_tmp:
                tmp.write_bytes(data)
                side_tmp.write_text(text)
        except BaseException:
            pending.unlink(missing_ok=True)
            raise
        try:
            os.replace(pending, sidecar)
        except OSError as exc:
            raise _write_error(sidecar, exc) from None


def read_pair(target: str | os.PathLike[str], sidecar: str | os.PathLike[str]) -> tuple[bytes, str, bytes | None]:
    """``target``'s bytes, their sha256, and the sidecar's bytes (None when there is none).

    Read under a shared lock, so never between a writer's renames; a pair a killed writer left
    half-renamed is read (and finished) through its pending sidecar.
    """
    target, sidecar = Path(target), Path(sidecar)
    folder = target.parent if str(target.parent) else Path(".")
    with folder_lock(folder, exclusive=False):
        data = target.read_bytes()
        digest = sha256_bytes(data)
        pending = _pending(sidecar, digest)
        with contextlib.suppress(FileNotFoundError):
            side = pending.read_bytes()
            with contextlib.suppress(OSError):
                os.replace(pending, sidecar)
            return data, digest, side
        try:
            return data, digest, sidecar.read_bytes()
        except FileNotFoundError:
            return data, digest, None


def has_sidecar(target: str | os.PathLike[str], sidecar: str | os.PathLike[str]) -> bool:
    """A sidecar beside ``target``, in place or pending after a killed write."""
    side = Path(sidecar)
    return side.exists() or bool(_pendings(side))


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_folder_output(
    flag: str, folder: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None]
) -> None:
    """Refuse an output folder that is, or holds, one of the inputs (replacing it would destroy them)."""
    target = os.path.realpath(folder)
    for given in inputs:
        if given is None:
            continue
        real = os.path.realpath(given)
        if real == target or real.startswith(target.rstrip(os.sep) + os.sep):
            raise TrtforgeError(
                f"{flag} {folder} holds the input {given}; writing it would destroy that input: "
                "choose another output folder"
            )


def check_outputs(
    outputs: Iterable[tuple[str, str | os.PathLike[str] | None]], inputs: Iterable[str | os.PathLike[str] | None]
) -> None:
    """Refuse an output that is one of the inputs, or an input engine's manifest, or another output.

    ``outputs`` pairs a flag with its path.  Paths are compared after resolving symlinks, and as
    files (device and inode), so a hard link to an input is caught too.
    """
    seen: dict[object, str] = {}
    for given in inputs:
        if given is None:
            continue
        path = Path(given)
        for p, what in ((path, f"the input {path}"), (Path(f"{path}.json"), f"the manifest of {path}")):
            seen.setdefault(os.path.realpath(p), what)
            if (ident := _identity(p)) is not None:
                seen.setdefault(ident, what)
    for flag, out in outputs:
        if out is None:
            continue
        path = Path(out)
        if path.is_dir():
            raise TrtforgeError(f"{flag} {path} is a folder; give a file name")
        for key in (os.path.realpath(path), _identity(path)):
            if key is not None and key in seen:
                raise TrtforgeError(
                    f"{flag} {path} is {seen[key]}; writing it would destroy it: choose another output path"
                )
        seen[os.path.realpath(path)] = f"also the output of another flag ({flag})"
        if (ident := _identity(path)) is not None:
            seen[ident] = f"also the output of another flag ({flag})"


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


SCRATCH_PREFIX = "trtforge-run-"


def sweep_dead(folder: str | os.PathLike[str], pattern: re.Pattern[str]) -> list[Path]:
    """Remove the entries of ``folder`` whose whole name matches ``pattern`` (group 1: the owner's
    pid) and whose owner is gone: what trtforge processes that were killed left behind."""
    import shutil

    removed = []
    for path in Path(folder).iterdir() if Path(folder).is_dir() else ():
        match = pattern.fullmatch(path.name)
        if match is None or int(match.group(1)) == os.getpid() or pid_alive(int(match.group(1))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


SCRATCH_PATTERN = re.compile(rf"{SCRATCH_PREFIX}([0-9]{{1,7}})")  # Linux pids are < 2**22


def sweep_scratch(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the scratch folders of trtforge processes that are gone (killed before cleaning up)."""
    return sweep_dead(root or tempfile.gettempdir(), SCRATCH_PATTERN)


@contextlib.contextmanager
def process_scratch() -> Iterator[Path]:
    """One scratch folder for this process (``TMPDIR/trtforge-run-PID``) that every temporary goes under.

    It becomes ``tempfile``'s folder while the block runs and is removed after; folders that
    killed runs left are swept when the next one starts.
    """
    import shutil

    base = Path(tempfile.gettempdir())
    sweep_scratch(base)
    folder = base / f"{SCRATCH_PREFIX}{os.getpid()}"
    previous, previous_env = tempfile.tempdir, os.environ.get("TMPDIR")
    try:  # from the mkdir on: a Ctrl-C right after it must still remove the folder
        folder.mkdir(mode=0o700, exist_ok=True)
        tempfile.tempdir = str(folder)
        os.environ["TMPDIR"] = str(folder)  # native libraries' temporaries too
        yield folder
    finally:
        try:
            tempfile.tempdir = previous
            if previous_env is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = previous_env
        finally:  # even when a Ctrl-C lands in the lines above
            shutil.rmtree(folder, ignore_errors=True)
