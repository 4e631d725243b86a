"""Project exceptions of ``benchmark/``: every user-facing failure names the file, key or value and what was expected.

The root, :class:`TICLError`, lives in :mod:`audio_ticl.models.errors` (the bottom layer, importable by every
package without a cycle) and is re-exported here; the CLI catches it and nothing else.
"""
from __future__ import annotations

from audio_ticl.models.errors import ModelError, TICLError

__all__ = ["TICLError", "ModelError", "ConfigError", "DataError", "CheckpointError", "OptionError", "OutputError"]


class ConfigError(TICLError):
    """A config key or value is unknown or invalid."""


class DataError(TICLError):
    """A dataset root, metadata file or audio file is missing or unreadable."""


class CheckpointError(TICLError):
    """A task checkpoint cannot be resumed from (unreadable, or written in another checkpoint format)."""


class OptionError(TICLError):
    """A command-line option's value is invalid (the message names the option and what was expected)."""


class OutputError(TICLError):
    """A result cannot be written where it was asked to go (a file in the way, no permission, a full disk)."""
