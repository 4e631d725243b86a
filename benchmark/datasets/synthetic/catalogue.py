"""The class catalogue: which synthetic classes exist, in which order, and which are tasks or upstream classes.

Importing the two sound modules registers their classes; the lists below are read from the registry, so adding a
class is writing its function (and bumping ``GENERATOR_VERSION`` if an existing clip changes), never editing a table.
"""
from __future__ import annotations

from audio_ticl.benchmark.errors import ConfigError

from . import task_sounds, upstream_sounds  # noqa: F401  (importing registers the classes)
from .registry import GENERATORS, ROLES

__all__ = ["DEFAULT_TASK_CLASSES", "SYNTHETIC_CLASSES", "UPSTREAM_CLASSES", "check_class"]

#: five tasks of two classes: consecutive pairs of this list (the task sounds, in definition order)
DEFAULT_TASK_CLASSES: list[str] = [name for name in GENERATORS if ROLES[name] == "task"]
#: classes for upstream pretraining of the backbone; disjoint from DEFAULT_TASK_CLASSES
UPSTREAM_CLASSES: list[str] = [name for name in GENERATORS if ROLES[name] == "upstream"]
#: every class, in canonical order: the task classes first, then the upstream classes
SYNTHETIC_CLASSES: list[str] = DEFAULT_TASK_CLASSES + UPSTREAM_CLASSES


def check_class(label: str) -> None:
    """A ConfigError listing the available classes when ``label`` is not one."""
    if label not in GENERATORS:
        raise ConfigError(f"unknown synthetic class {label!r}; available: {', '.join(SYNTHETIC_CLASSES)}")
