"""The lock that lets processes started together (DDP ranks, parallel sweeps) prepare a dataset once."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


@contextmanager
def prepare_lock(folder: Path):
    """Hold ``.<name>.lock`` next to ``folder`` while preparing it.

    When the prepare fails and no prepared folder is there, the lock file (and any parent folders made
    for it) is removed, while still held, so a failed command leaves nothing behind. A process waiting
    on it then takes the lock, finds the folder missing and fails or prepares in its turn.
    """
    folder = Path(folder)
    made = []
    parent = folder.parent
    while not parent.exists():
        made.append(parent)
        parent = parent.parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock_file = folder.parent / f".{folder.name}.lock"
    with FileLock(str(lock_file)):
        try:
            yield
        except BaseException:
            if not folder.exists():
                lock_file.unlink(missing_ok=True)
                for path in made:  # innermost first
                    try:
                        path.rmdir()
                    except OSError:
                        break
            raise
