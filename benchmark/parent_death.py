"""A child process that ends with its parent: feature-pool workers and sweep cells. A child blocked on a pipe or
busy training never notices its parent's SIGKILL, and would otherwise go on (for good, or writing into a folder
that a resumed run trains again)."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

__all__ = ["PARENT_POLL_S", "die_with_parent"]

#: how often the fallback (not Linux) looks whether the parent is gone
PARENT_POLL_S = 1.0


def _kill_me_with_parent() -> bool:
    """Ask the Linux kernel to SIGKILL this process when its parent exits (PR_SET_PDEATHSIG); False where that is
    not available. The "parent" is the thread that started this process, which must outlive it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        pr_set_pdeathsig = 1
        return ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    """Exit once the parent is gone (this process is re-parented, so ``getppid`` changes)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def die_with_parent(parent: int) -> None:
    """From now on this process ends when ``parent`` does (at once if it already has): the kernel's death signal
    on Linux, a daemon thread polling the parent pid elsewhere."""
    if not _kill_me_with_parent():
        threading.Thread(target=_watch_parent, args=(parent,), name="ticl-parent-watch", daemon=True).start()
    if os.getppid() != parent:
        os._exit(1)
