"""Detect truncated audio files from their headers and tails.

libsndfile decodes whatever part of a cut-off file is present and reports that as the whole (``sf.info`` gives the
truncated frame count, not the header's), so a half-copied download would silently train on half a clip. This
module reads what a file declares, cheaply (the header's first bytes, or the last Ogg page), and
:func:`check_complete` compares it with the frames that were decoded.

- WAV (RIFF/RIFX, RF64, Wave64): the ``data`` chunk's byte size over the ``fmt`` block align (PCM, float and
  A/mu-law only: compressed formats pack frames into blocks and are skipped);
- FLAC: STREAMINFO's total-samples field (0 means unknown: skipped);
- Ogg (Vorbis, Opus, Ogg FLAC): the last page must be whole and carry the end-of-stream flag.

Anything this module cannot parse is left to libsndfile: the checks only ever add errors for files whose header
states a length that the file does not hold.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from audio_ticl.benchmark.errors import DataError

__all__ = ["check_complete", "declared_frames", "ogg_tail_problem"]

#: WAVE format tags whose block align is exactly one frame: PCM, IEEE float, A-law, mu-law, extensible
_FRAME_ALIGNED_FORMATS = frozenset({0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE})
#: a RIFF data size that means "unknown" (streaming writers leave 0 or 0xFFFFFFFF when they cannot seek back)
_UNKNOWN_SIZES = frozenset({0, 0xFFFFFFFF})
#: chunks walked at most before giving up on a WAV header (real files have a handful)
_MAX_CHUNKS = 256
#: the largest Ogg page: 27-byte header, 255 lacing values, 255 segments of 255 bytes
_MAX_OGG_PAGE = 27 + 255 + 255 * 255
_OGG_EOS = 0x04
#: Wave64 chunk ids are GUIDs; their first four bytes name the chunk as in RIFF
_W64_RIFF = b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00"


def check_complete(path: Path, decoded_frames: int) -> None:
    """Raise a DataError if ``path``'s header declares more (or fewer) frames than were decoded, or if an Ogg file
    ends without its end-of-stream page. Reads only the header or the tail."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
            if head.startswith(b"OggS"):
                problem = ogg_tail_problem(handle)
                if problem:
                    raise DataError(f"{path}: truncated: {problem} (expected a complete Ogg stream)")
                return
            declared = declared_frames(handle, head)
    except OSError as err:
        raise DataError(f"{path}: cannot read the audio header ({err})") from err
    if declared is None or declared == decoded_frames:
        return
    if decoded_frames < declared:
        raise DataError(f"{path}: truncated: its header declares {declared} frames, the file holds {decoded_frames}")
    raise DataError(
        f"{path}: its header declares {declared} frames, but {decoded_frames} were decoded (expected the same count)"
    )


def declared_frames(handle: BinaryIO, head: bytes) -> int | None:
    """The frame count the header of a WAV/RF64/W64/FLAC file declares, or None where it declares none (or the
    format is not one of these). ``head`` is the file's first 12 bytes; ``handle`` may be anywhere."""
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        return _riff_frames(handle, "<" if head[:4] == b"RIFF" else ">")
    if head[:4] == b"RF64" and head[8:12] == b"WAVE":
        return _riff_frames(handle, "<", rf64=True)
    if head[:4] == b"riff":
        return _w64_frames(handle)
    if head[:4] == b"fLaC" or head[:3] == b"ID3":
        return _flac_frames(handle, head)
    return None


# -- WAV -------------------------------------------------------------------------------------------------------

def _riff_frames(handle: BinaryIO, order: str, rf64: bool = False) -> int | None:
    """Walk the RIFF chunks after ``WAVE`` for ``fmt `` (block align) and ``data`` (byte size); RF64 takes the data
    size from its ``ds64`` chunk."""
    offset, block_align, data_size, ds64_size = 12, None, None, None
    for _ in range(_MAX_CHUNKS):
        handle.seek(offset)
        header = handle.read(8)
        if len(header) < 8:
            break
        chunk_id, size = header[:4], struct.unpack(order + "I", header[4:])[0]
        if chunk_id == b"fmt ":
            block_align = _fmt_block_align(handle.read(min(size, 40)), order)
        elif chunk_id == b"ds64" and rf64:
            ds64 = handle.read(16)
            ds64_size = struct.unpack("<Q", ds64[8:16])[0] if len(ds64) == 16 else None
        elif chunk_id == b"data":
            data_size = ds64_size if rf64 and size == 0xFFFFFFFF else size
            if block_align is not None:
                break
        offset += 8 + size + (size & 1)  # chunks are word-aligned
    if not block_align or data_size is None or data_size in _UNKNOWN_SIZES:
        return None
    return data_size // block_align


def _fmt_block_align(fmt: bytes, order: str) -> int | None:
    """The block align of a ``fmt `` chunk whose blocks are single frames, else None."""
    if len(fmt) < 16:
        return None
    tag, _channels, _rate, _byte_rate, block_align = struct.unpack(order + "HHIIH", fmt[:14])
    return block_align if tag in _FRAME_ALIGNED_FORMATS and block_align > 0 else None


def _w64_frames(handle: BinaryIO) -> int | None:
    """Wave64: 16-byte GUID + 8-byte size (header included) per chunk, chunks 8-byte aligned."""
    handle.seek(0)
    if handle.read(16) != _W64_RIFF:
        return None
    offset, block_align, data_size = 40, None, None  # riff GUID + size + wave GUID
    for _ in range(_MAX_CHUNKS):
        handle.seek(offset)
        header = handle.read(24)
        if len(header) < 24:
            break
        chunk_id, size = header[:4], struct.unpack("<Q", header[16:])[0]
        if size < 24:
            return None
        if chunk_id == b"fmt ":
            block_align = _fmt_block_align(handle.read(min(size - 24, 40)), "<")
        elif chunk_id == b"data":
            data_size = size - 24
            if block_align is not None:
                break
        offset += (size + 7) & ~7
    if not block_align or data_size is None:
        return None
    return data_size // block_align


# -- FLAC ------------------------------------------------------------------------------------------------------

def _flac_frames(handle: BinaryIO, head: bytes) -> int | None:
    """STREAMINFO's 36-bit total-samples field (frames: it counts inter-channel samples); 0 means unknown."""
    start = 0
    if head[:3] == b"ID3" and len(head) >= 10:  # an ID3v2 tag before the stream: skip it (size is syncsafe)
        size = 0
        for byte in head[6:10]:
            size = (size << 7) | (byte & 0x7F)
        start = 10 + size + (10 if head[5] & 0x10 else 0)
    handle.seek(start)
    block = handle.read(4 + 4 + 18)  # magic, metadata block header, STREAMINFO up to the total-samples field
    if len(block) < 26 or block[:4] != b"fLaC" or block[4] & 0x7F != 0:
        return None
    total = struct.unpack(">Q", block[18:26])[0] & ((1 << 36) - 1)
    return total or None


# -- Ogg -------------------------------------------------------------------------------------------------------

def ogg_tail_problem(handle: BinaryIO) -> str | None:
    """What is wrong with the end of an Ogg file (its last page cut short, or without the end-of-stream flag), or
    None when it ends in a whole end-of-stream page. Reads at most one maximal page from the end."""
    end = handle.seek(0, 2)
    start = max(0, end - _MAX_OGG_PAGE)
    handle.seek(start)
    tail = handle.read(end - start)
    position = tail.rfind(b"OggS")
    while position >= 0:
        length = _ogg_page_length(tail, position)
        if length is not None and position + length == len(tail):
            if tail[position + 5] & _OGG_EOS:
                return None
            return "its last Ogg page has no end-of-stream flag"
        position = tail.rfind(b"OggS", 0, position)
    return "its last Ogg page is cut short"


def _ogg_page_length(data: bytes, position: int) -> int | None:
    """The byte length of the Ogg page starting at ``position`` (header, lacing table and body), or None if the
    header there is incomplete or not an Ogg page header."""
    if position + 27 > len(data) or data[position + 4] != 0:  # stream structure version is 0
        return None
    segments = data[position + 26]
    table = data[position + 27:position + 27 + segments]
    if len(table) < segments:
        return None
    return 27 + segments + sum(table)
