"""The settings that determine a clip's fbank, and the frame arithmetic that follows from them.

Kept free of torch so that dataset sources can size their inputs (``target_frames``) from the front end's settings
without importing the feature code; :mod:`.features` re-exports :class:`FbankSettings`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["FEATURE_VERSION", "FEATURE_KINDS", "FbankSettings"]

#: bump when the feature computation changes in a way the settings do not capture, to invalidate caches
FEATURE_VERSION = 1


#: the front ends: kaldi log-mel fbank (AST, SSAST, SSAMBA) and MFCC (the MFCC-gram transformer)
FEATURE_KINDS = ("fbank", "mfcc")


@dataclass(frozen=True)
class FbankSettings:
    """Everything that determines a clip's features (fbank, or MFCC with ``kind="mfcc"``); ``cache_token`` turns it
    into a cache-key part. ``n_mfcc`` is read only for MFCC (coefficients kept of ``num_mel_bins`` mel bands)."""

    sample_rate: int = 16000
    num_mel_bins: int = 128
    frame_shift_ms: float = 10.0
    frame_length_ms: float = 25.0
    target_frames: int = 1024
    kind: str = "fbank"
    n_mfcc: int = 128

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise ValueError(f"FbankSettings.kind must be one of {', '.join(FEATURE_KINDS)}, got {self.kind!r}")
        for name, value in asdict(self).items():
            if name != "kind" and value <= 0:
                raise ValueError(f"FbankSettings.{name} must be positive, got {value}")
        if self.kind == "mfcc" and self.n_mfcc > self.num_mel_bins:
            raise ValueError(f"MFCC keeps at most num_mel_bins ({self.num_mel_bins}) coefficients, got n_mfcc "
                             f"{self.n_mfcc}")

    @property
    def feature_bins(self) -> int:
        """Values per frame: the mel bins of fbank, the coefficients of MFCC."""
        return self.n_mfcc if self.kind == "mfcc" else self.num_mel_bins

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
        """A stable string of every field that matters (and the feature version), e.g. for cache keys; an fbank's
        token leaves out the MFCC fields, so caches made before MFCC existed stay valid."""
        values = asdict(self)
        kind, n_mfcc = values.pop("kind"), values.pop("n_mfcc")
        if kind == "mfcc":
            values["n_mfcc"] = n_mfcc
        fields = ",".join(f"{name}={value!r}" for name, value in values.items())
        return f"{kind}-v{FEATURE_VERSION}({fields})"
