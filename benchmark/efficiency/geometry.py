"""Input geometry of the measured cases: frames -> AST patch grid -> patch tokens, and back.

The one place that knows how a frame count becomes tokens, through the real patch embedding
(``PatchEmbed.grid_size``: 128 mel bins, 16 x 16 patches, the same stride in frequency and time), so the token
counts in the tables are the ones the backbone sees. A later sequence backbone without a patch grid would add its
own mapping here.
"""
from __future__ import annotations

from dataclasses import dataclass

from audio_ticl.benchmark.errors import OptionError
from audio_ticl.models.layers import PatchEmbed

N_MELS = 128
PATCH = 16


@dataclass(frozen=True)
class Geometry:
    """One input length: ``frames`` fbank frames at ``stride`` give a (F', T') ``grid`` of patch tokens."""

    frames: int
    stride: int
    grid: tuple[int, int]

    @property
    def tokens(self) -> int:
        """Patch tokens (the prefix tokens, CLS, come on top)."""
        return self.grid[0] * self.grid[1]

    @property
    def grid_text(self) -> str:
        return f"{self.grid[0]}x{self.grid[1]}"


def _grid(frames: int, stride: int) -> tuple[int, int]:
    try:
        return PatchEmbed(1, PATCH, stride, stride).grid_size(frames, N_MELS)
    except ValueError as exc:
        raise OptionError(f"--frames {frames}: {exc}") from None


def from_frames(frames: int, stride: int) -> Geometry:
    """The grid of ``frames`` frames at ``stride`` (e.g. 1024 at 10 -> 12 x 101; at 16 -> 8 x 64)."""
    if frames < 1 or stride < 1:
        raise OptionError(f"--frames {frames} at --strides {stride}: both must be positive")
    return Geometry(frames, stride, _grid(frames, stride))


def from_tokens(tokens: int, stride: int) -> Geometry:
    """The shortest input whose grid at ``stride`` has exactly ``tokens`` patch tokens; an error if none has."""
    rows = from_frames(PATCH, stride).grid[0]  # F' does not depend on the frame count
    if tokens < 1 or tokens % rows:
        near = " or ".join(map(str, sorted({max(rows, tokens // rows * rows), (tokens // rows + 1) * rows})))
        raise OptionError(
            f"--tokens {tokens}: no frame count gives exactly {tokens} patch tokens at stride {stride}, whose grid "
            f"has {rows} frequency rows; use a multiple of {rows} (e.g. {near})"
        )
    frames = (tokens // rows - 1) * stride + PATCH
    geometry = from_frames(frames, stride)
    assert geometry.tokens == tokens, (geometry, tokens)  # the inverse agrees with the real patch embedding
    return geometry


def geometries(frames: list[int] | None, tokens: list[int] | None, strides: list[int]) -> list[Geometry]:
    """Every (stride, length) pair, in the order given, without repeats."""
    out: list[Geometry] = []
    for stride in strides:
        if tokens is not None:
            found = [from_tokens(n, stride) for n in tokens]
        else:
            found = [from_frames(f, stride) for f in frames or []]
        out += [g for g in found if g not in out]
    return out
