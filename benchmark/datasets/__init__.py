"""Dataset sources in their official layouts, and the registry that configs name them by."""
from __future__ import annotations

from audio_ticl.benchmark.datasets.ave import AVESource
from audio_ticl.benchmark.datasets.base import SPLITS, Clip, ClipSource, FeatureDefaults
from audio_ticl.benchmark.datasets.csv_source import CsvSource
from audio_ticl.benchmark.datasets.esc50 import ESC50Source
from audio_ticl.benchmark.datasets.folder import FolderSource
from audio_ticl.benchmark.datasets.fsdd import FSDDSource
from audio_ticl.benchmark.datasets.speechcommands import COMMAND_WORDS, SpeechCommandsSource
from audio_ticl.benchmark.datasets.synthetic import SyntheticSource
from audio_ticl.benchmark.datasets.urbansound8k import UrbanSound8KSource
from audio_ticl.benchmark.errors import ConfigError

__all__ = [
    "SPLITS",
    "Clip",
    "ClipSource",
    "FeatureDefaults",
    "AVESource",
    "CsvSource",
    "ESC50Source",
    "FolderSource",
    "FSDDSource",
    "SpeechCommandsSource",
    "SyntheticSource",
    "UrbanSound8KSource",
    "COMMAND_WORDS",
    "SOURCES",
    "register_source",
]

#: config name -> source class
SOURCES: dict[str, type[ClipSource]] = {
    "esc50": ESC50Source,
    "speechcommands": SpeechCommandsSource,
    "fsdd": FSDDSource,
    "urbansound8k": UrbanSound8KSource,
    "ave": AVESource,
    "synthetic": SyntheticSource,
    "folder": FolderSource,
    "csv": CsvSource,
}


def register_source(name: str, cls: type[ClipSource]) -> None:
    """Make ``cls`` available to configs as ``name``; re-registering a name with another class is an error."""
    if not isinstance(cls, type) or not issubclass(cls, ClipSource):
        raise ConfigError(f"source {name!r}: {cls!r} is not a ClipSource subclass")
    existing = SOURCES.get(name)
    if existing is not None and existing is not cls:
        raise ConfigError(f"source {name!r} is already registered as {existing.__name__}")
    SOURCES[name] = cls
