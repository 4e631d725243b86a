"""One cell's ``ticl run``, as the child process of the Ray worker that runs the cell:
``python -m audio_ticl.benchmark.sweep.cell PARENT_PID run ...``.

It is ``ticl run`` itself (the same arguments, errors and exit status), except that it dies with its worker. A worker
killed with its sweep (SIGKILL, a cancelled cell, a cluster going down) would otherwise leave the run going on,
writing into the cell's folder while a resumed sweep trains the same cell again.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

#: how often the fallback (not Linux) looks whether the parent is gone
PARENT_POLL_S = 1.0


def _kill_me_with_parent() -> bool:
    """Ask the Linux kernel to SIGKILL this process when its parent exits; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        pr_set_pdeathsig = 1
        return ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def die_with_parent(parent: int) -> None:
    """From now on this process ends when ``parent`` does (at once if it already has)."""
    if not _kill_me_with_parent():
        threading.Thread(target=_watch_parent, args=(parent,), name="ticl-parent-watch", daemon=True).start()
    if os.getppid() != parent:
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    die_with_parent(int(argv[0]))
    from ..cli import main as ticl

    return ticl(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
