"""Animated GIFs of segmented frames (overlays or composites), written with Pillow."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageOps

from npdeeplab.errors import InputError
from npdeeplab.files import atomic_file

DEFAULT_FRAME_MS = 100


class Animation:
    """Frames collected one at a time, each reduced to a 256-colour palette as it comes (one byte
    a pixel held), then written as one GIF that loops forever. Frames of another size than the
    first are scaled to fit inside it and centred on black."""

    def __init__(self, frame_ms: int = DEFAULT_FRAME_MS) -> None:
        if frame_ms <= 0:
            raise InputError(f"the frame duration must be 1 ms or more, got {frame_ms}")
        self.frame_ms = int(frame_ms)
        self.frames: list[Image.Image] = []

    def __len__(self) -> int:
        return len(self.frames)

    def add(self, frame: Image.Image) -> None:
        frame = frame.convert("RGB")
        if self.frames and frame.size != self.frames[0].size:
            frame = ImageOps.pad(frame, self.frames[0].size, method=Image.Resampling.BICUBIC, color=(0, 0, 0))
        self.frames.append(frame.quantize(256, method=Image.Quantize.MEDIANCUT))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the GIF atomically (nothing under path unless all of it was written)."""
        if not self.frames:
            raise InputError("no frames to animate")
        first, *rest = self.frames
        with atomic_file(path) as f:
            first.save(f, format="GIF", save_all=True, append_images=rest, duration=self.frame_ms, loop=0)
        return Path(path)
