"""Project exceptions: every user-facing failure names the file, key or value and what was expected."""
from __future__ import annotations


class TICLError(Exception):
    """Base class for errors caused by user input (config, data, paths), shown without a traceback."""


class ConfigError(TICLError):
    """A config key or value is unknown or invalid."""


class DataError(TICLError):
    """A dataset root, metadata file or audio file is missing or unreadable."""
