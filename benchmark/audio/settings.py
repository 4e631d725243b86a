"""The settings that determine a clip's fbank, and the frame arithmetic that follows from them.

Kept free of torch so that dataset sources can size their inputs (``target_frames``) from the front end's settings
without importing the feature code; :mod:`.features` re-exports :class:`FbankSettings`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["FEATURE_VERSION", "FbankSettings"]

#: bump when the feature computation changes in a way the settings do not capture, to invalidate caches
FEATURE_VERSION = 1


@dataclass(frozen=True)
class FbankSettings:
    """Everything that determines a clip's fbank; ``cache_token`` turns it into a cache-key part."""

    sample_rate: int = 16000
    num_mel_bins: int = 128
    frame_shift_ms: float = 10.0
    frame_length_ms: float = 25.0
    target_frames: int = 1024

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value <= 0:
                raise ValueError(f"FbankSettings.{name} must be positive, got {value}")

    @property
    def frame_length_samples(self) -> int:
        """Samples in one analysis window (400 at 16 kHz / 25 ms): kaldi's minimum input length."""
        return int(round(self.sample_rate * self.frame_length_ms / 1000.0))

    def num_frames(self, num_samples: int) -> int:
        """Frames the fbank of ``num_samples`` samples has before padding or cropping (98 for 1 s at 16 kHz).

        Kaldi keeps only whole windows (``snip_edges``), sized as torchaudio's kaldi sizes them; input shorter than
        one window is first padded to one (``fbank``), so it gives one frame. Sources use this to size
        ``target_frames`` from their clip length instead of repeating the arithmetic.
        """
        # the same float expressions as torchaudio.compliance.kaldi._get_waveform_and_window_properties
        window = int(self.sample_rate * self.frame_length_ms * 0.001)
        shift = int(self.sample_rate * self.frame_shift_ms * 0.001)
        padded = max(int(num_samples), self.frame_length_samples)
        return 0 if padded < window else 1 + (padded - window) // shift

    def cache_token(self) -> str:
        """A stable string of every field (and the feature version), e.g. for cache keys."""
        fields = ",".join(f"{name}={value!r}" for name, value in asdict(self).items())
        return f"fbank-v{FEATURE_VERSION}({fields})"
