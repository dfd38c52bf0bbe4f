"""Embed InternVQA's ScoreStream in an encoder's frame loop.

An encoder reconstructs each frame it codes; quality monitoring wants a score for the
stream as it is produced, without a reference and without a second pass. This script
plays the encoder: it encodes an input video with libx264 at a chosen CRF through PyAV,
decodes the reconstruction frame by frame, pushes each frame into a `ScoreStream`, and
prints one JSON line per window the moment that window is complete, then the pooled line.

    python examples/encoder_loop.py --bundle work/bundles/vit_s --input clip.mp4 --crf 35
"""

from __future__ import annotations

import argparse
import io
import json
import sys

import av

from internvqa.runtime import Scorer, ScoreStream
from internvqa.runtime.errors import InternVQAError


def reconstructed_frames(path: str, crf: int):
    """Yield (H, W, 3) uint8 RGB frames as a libx264 encoder at `crf` reconstructs them."""
    with av.open(path) as src:
        stream = src.streams.video[0]
        packets = io.BytesIO()
        with av.open(packets, "w", format="h264") as enc:
            out = enc.add_stream("libx264", rate=stream.average_rate or 25)
            out.width, out.height = stream.codec_context.width, stream.codec_context.height
            out.pix_fmt = "yuv420p"
            out.options = {"crf": str(crf), "preset": "veryfast", "tune": "zerolatency"}
            decoder = av.CodecContext.create("h264", "r")
            for frame in src.decode(stream):
                for packet in out.encode(frame.reformat(format="yuv420p")):
                    for rec in decoder.decode(packet):
                        yield rec.to_ndarray(format="rgb24")
            for packet in out.encode():
                for rec in decoder.decode(packet):
                    yield rec.to_ndarray(format="rgb24")
            for rec in decoder.decode(None):
                yield rec.to_ndarray(format="rgb24")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True, help="InternVQA bundle directory")
    ap.add_argument("--input", required=True, help="video to encode")
    ap.add_argument("--crf", type=int, default=30, help="libx264 CRF of the simulated encoder")
    ap.add_argument("--fps", type=float, default=25.0)
    args = ap.parse_args(argv)
    try:
        scorer = Scorer(args.bundle)
        stream = ScoreStream(scorer, fps=args.fps, name=args.input)
        for frame in reconstructed_frames(args.input, args.crf):
            for window in stream.push(frame):  # a score as soon as a window is complete
                print(json.dumps(window.to_dict()), flush=True)
        streamed = len(stream.scores)
        result = stream.flush()  # scores the trailing partial window, pools everything
        for window in stream.scores[streamed:]:
            print(json.dumps(window.to_dict()), flush=True)
        print(json.dumps({"pooled_metrics": result.pooled, "frames": stream.frames_pushed}),
              flush=True)
    except InternVQAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
