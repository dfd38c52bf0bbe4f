"""Bitstream side information: what the encoder spent on each window, for the model's head.

A compressed file says how many bits its encoder spent, and that is most of what decides
its quality for a given content: on held-out sources of the `standard` corpus, log
bits-per-pixel with the codec and resolution ranks VMAF about as well as a pixel model
fine-tuned from ImageNet weights, and the two disagree in different places (the pixel
model misjudges content it has not seen; bits alone cannot tell easy content from hard).
A hybrid model therefore reads both: its graph has a second input, `side` (B, SIDE_DIM),
fused with the pixel features in the head.

Where the numbers come from: `PyAVSource` records each demuxed packet's size and hands it
to the frame that packet produced (matched by presentation timestamp, so B-frame reordering
does not shift bits between frames); `WindowAssembler` sums the bits of every frame in a
window's span (first to last sampled frame, all frames in between counted); no second pass
over the file. An encoder embedding `ScoreStream` passes its own frame sizes with
`push(frame, bits=...)`. Raw YUV, in-memory frames, or a window with any frame of unknown
size give the all-zero vector: the model's pixel-only mode (it is trained with the side
input dropped at random, so that mode is a trained mode, not a degraded guess).

The vector (one implementation: training, export calibration and the runtime call
`side_vector`):

    has_bits              1.0 when the rest is filled, else everything is 0
    log2_bpp              (log2(bits / (coded pixels x frames)) + 6) / 4
    h264 hevc vp9 av1     codec family, one-hot
    log2_scale            log2(coded pixels / display pixels) / 2: 0 for a file watched at
                          its own size, -1 for a half-width rung upscaled for viewing

Only the four codec families the model was trained on carry bits: a lossless file (FFV1,
as the corpus stores its upscaled resolution-ladder rungs), MPEG-4 Part 2 or any other
codec is scored in pixel-only mode, because its bits per pixel mean something else.

Bits per pixel are counted on the coded size (the file's). A resolution-ladder rung is
watched upscaled: `vqa-score --display WxH` (`Scorer.score_file(display=...)`) upscales
the decoded frames bicubically to the display size, as the corpus stores its rungs and as
libvmaf compares them, and `log2_scale` tells the head how few pixels were coded. The
absolute resolution is deliberately not an input: the corpus has two (640x360, 1280x720),
too few to learn it from without extrapolating on every other size.
"""

from __future__ import annotations

import math

import numpy as np

SIDE_VERSION = 1
SIDE_NAMES = ("has_bits", "log2_bpp", "h264", "hevc", "vp9", "av1", "log2_scale")
SIDE_DIM = len(SIDE_NAMES)
CODEC_FAMILIES = ("h264", "hevc", "vp9", "av1")
_ALIASES = {
    "h264": "h264", "libx264": "h264", "avc": "h264", "avc1": "h264", "h264_cuvid": "h264",
    "hevc": "hevc", "h265": "hevc", "libx265": "hevc", "hev1": "hevc", "hvc1": "hevc",
    "vp9": "vp9", "libvpx-vp9": "vp9", "libvpx_vp9": "vp9", "vp09": "vp9",
    "av1": "av1", "libdav1d": "av1", "libaom-av1": "av1", "libsvtav1": "av1", "av01": "av1",
}


def codec_family(name: str | None) -> str:
    """'h264' | 'hevc' | 'vp9' | 'av1' | 'other' for a decoder/encoder/codec name."""
    return _ALIASES.get((name or "").strip().lower(), "other")


def side_vector(
    bits: float | None, frames: int, width: int, height: int, codec: str | None,
    display: tuple[int, int] | None = None,
) -> np.ndarray:
    """The (SIDE_DIM,) float32 side input for one window; zeros when the bits are unknown.

    `width` x `height`: the coded size; `display`: the size it is watched at (None: the
    coded size), for a resolution-ladder rung scored upscaled."""
    out = np.zeros(SIDE_DIM, dtype=np.float32)
    if bits is None or not frames or frames < 1 or width < 1 or height < 1:
        return out
    if not math.isfinite(bits) or bits <= 0:
        return out
    fam = codec_family(codec)
    if fam not in CODEC_FAMILIES:  # lossless (FFV1...) or a codec the model never saw
        return out
    bpp = float(bits) / (float(width) * float(height) * int(frames))
    out[0] = 1.0
    out[1] = (math.log2(bpp) + 6.0) / 4.0
    out[2 + CODEC_FAMILIES.index(fam)] = 1.0
    dw, dh = display or (width, height)
    out[6] = math.log2(width * height / max(1, dw * dh)) / 2.0
    return out


def describe(side: np.ndarray) -> str:
    """'pixels+bitstream' when every row carries bits, 'pixels' when none, else 'mixed'."""
    has = np.asarray(side, dtype=np.float32).reshape(-1, SIDE_DIM)[:, 0] > 0.5
    if has.all():
        return "pixels+bitstream"
    return "pixels" if not has.any() else "mixed"
