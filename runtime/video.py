"""Video input, in three modules: `frames` (lazy decoded frames, in-memory validation),
`sources` (files, raw YUV, arrays, display scaling, `open_video`) and `windows` (the
streaming window assembler and `iter_windows`). This module re-exports their public names
so `from internvqa.runtime.video import ...` keeps working.

Every source yields `Frame` objects that are *lazy*: decoding happens, but colour
conversion and resizing run only for the frames a clip window samples (see
`ClipSpec`), and frames are streamed, so memory stays flat with video length.
"""

from internvqa.runtime.frames import (  # noqa: F401
    RAW_PIX_FMTS,
    Frame,
    YUVPlanes,
    check_fps,
    frame_from_array,
)
from internvqa.runtime.sources import (  # noqa: F401
    ArraySource,
    DisplaySource,
    PyAVSource,
    RawYUVSource,
    VideoInfo,
    VideoSource,
    open_video,
    raw_frame_bytes,
)
from internvqa.runtime.windows import (  # noqa: F401
    Window,
    WindowAssembler,
    iter_windows,
    read_windows,
)
