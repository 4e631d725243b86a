"""One cell's ``ticl run``, as the child process of the Ray worker that runs the cell:
``python -m audio_ticl.benchmark.sweep.cell PARENT_PID run ...``.

It is ``ticl run`` itself (the same arguments, errors and exit status), except that it dies with its worker. A worker
killed with its sweep (SIGKILL, a cancelled cell, a cluster going down) would otherwise leave the run going on,
writing into the cell's folder while a resumed sweep trains the same cell again.
"""
from __future__ import annotations

import sys

from ..parent_death import die_with_parent


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    die_with_parent(int(argv[0]))
    from ..cli import main as ticl

    return ticl(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
