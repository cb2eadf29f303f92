"""Advisory locks that tell two napari-vos processes apart: a run writing a partial labels file, a
training run or an evaluation writing into a folder. POSIX flock, released by the system when the
holding process ends however it ends; none on Windows or on file systems without locks (Lustre
without -o flock, NFS without lockd), where runs go on unlocked as before."""
from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Any

__all__ = ["lock_handle", "locked", "hold_folder", "FOLDER_LOCK"]

#: flock's answers on a file system without locks
NO_LOCKS = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)
#: the file a folder's lock is held on (left in place: deleting lock files races)
FOLDER_LOCK = ".napari-vos.lock"


def lock_handle(handle: Any, wait: float = 0.0) -> Any:
    """``handle``, an open file, holding an exclusive lock on it; None (the handle closed) where the
    system has no locks. A BlockingIOError where another process holds it for longer than ``wait``
    seconds: a file's maker passes a wait, as `locked` (another run asking whether the file is in
    use) holds the lock for a moment, which made the maker fail and delete its own new file."""
    try:
        import fcntl
    except ImportError:  # Windows
        handle.close()
        return None
    give_up = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() < give_up:
                time.sleep(0.005)
                continue
            handle.close()
            raise
        except OSError as err:
            handle.close()
            if err.errno in NO_LOCKS:
                return None
            raise


def locked(path: Path) -> bool:
    """Whether a live process holds ``path``'s lock (`lock_handle`)."""
    try:
        import fcntl
    except ImportError:
        return False
    with open(path, "rb") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:  # held by a live run; no lock at all where the file system has none
            return err.errno not in NO_LOCKS
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def hold_folder(folder: Path, what: str) -> Any:
    """Lock ``folder`` (an existing one) for this process's ``what`` ("training run", "evaluation"):
    the handle to keep (close it to let go; None where there are no locks), or a ValueError saying
    another process's run is writing there now."""
    path = Path(folder) / FOLDER_LOCK
    handle = open(path, "ab")
    try:
        return lock_handle(handle)
    except BlockingIOError:
        raise ValueError(f"another napari-vos {what} is writing into {folder} now; wait for it to end or give "
                         "another folder") from None
