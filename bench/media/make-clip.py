#!/usr/bin/env python3
"""The SFU benchmark's video: a moving test pattern encoded once to VP8 in an IVF file.

    python3 -m pip install av numpy  # PyAV bundles libvpx
    python3 bench/media/make-clip.py bench/media/clip.ivf

320x240, 30 fps, 10 s, about 300 kbit/s, a keyframe every 1.5 s (45 frames). The
load generator loops it; on a keyframe request it restarts at the first frame.
"""
import sys
from fractions import Fraction

import av
import numpy as np

W, H, FPS, SECONDS, KBPS, GOP = 320, 240, 30, 10, 300, 45


def frame(n: int) -> np.ndarray:
    """Colour bars scrolling left, a bright square crossing, and noise: moving detail
    the encoder has to spend bits on, as a camera would."""
    x = (np.arange(W) + 4 * n) % W
    bars = np.zeros((H, W, 3), np.uint8)
    palette = np.array([[235, 235, 235], [235, 235, 16], [16, 235, 235], [16, 235, 16],
                        [235, 16, 235], [235, 16, 16], [16, 16, 235], [16, 16, 16]], np.uint8)
    bars[:] = palette[(x * 8 // W)][None, :, :]
    # A gradient band that changes with time.
    y = np.arange(H)[:, None]
    bars[H * 2 // 3:, :, 0] = ((x[None, :] + y[H * 2 // 3:] * 2 + n * 8) % 256).astype(np.uint8)
    s = 48
    cx = int((W - s) * (0.5 + 0.5 * np.sin(n / 20)))
    cy = int((H - s) * (0.5 + 0.5 * np.cos(n / 27)))
    bars[cy:cy + s, cx:cx + s] = [255, 128, 0]
    rng = np.random.default_rng(n)
    noise = rng.integers(-12, 12, (H, W, 1), dtype=np.int16)
    return np.clip(bars.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def main(path: str) -> None:
    out = av.open(path, "w", format="ivf")
    st = out.add_stream("libvpx", rate=FPS)
    st.width, st.height, st.pix_fmt = W, H, "yuv420p"
    st.bit_rate = KBPS * 1000
    st.codec_context.gop_size = GOP
    st.codec_context.time_base = Fraction(1, FPS)
    st.options = {"deadline": "good", "cpu-used": "4", "lag-in-frames": "0",
                  "minrate": f"{KBPS}k", "maxrate": f"{KBPS}k", "b": f"{KBPS}k",
                  "keyint_min": str(GOP)}
    for n in range(FPS * SECONDS):
        vf = av.VideoFrame.from_ndarray(frame(n), format="rgb24").reformat(format="yuv420p")
        vf.pts = n
        vf.time_base = Fraction(1, FPS)
        for p in st.encode(vf):
            out.mux(p)
    for p in st.encode(None):
        out.mux(p)
    out.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/media/clip.ivf")
