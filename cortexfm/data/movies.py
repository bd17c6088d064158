"""A user's stimulus as a session's frames: a video file, a ``.npy`` array or a folder of images.

Every source is converted the same way, and :meth:`Movie.describe` says how in one line:

- **grey levels**: colour becomes luma, ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601); the
  result is in 0-255 like the recorded videos (8-bit sources as they are; a float array whose
  values all lie in 0-1 is multiplied by 255). A video stored as 8-bit YUV (H.264, VP9, ...
  in yuv420p and its kin) already holds its luma: its Y plane is read as it is, expanded from
  the limited range 16-235 to 0-255 unless the file says the full range, with no round trip
  through RGB (for grey content the same values, for colour the video's own luma); other
  pixel formats are converted to RGB first;
- **frame size**: centre-cropped to the session's aspect ratio (``fit="crop"``, refused when
  that would discard more than half of the frame) or stretched (``fit="stretch"``), then resized
  to the session's height x width (area averaging when shrinking, bilinear when enlarging);
- **frame rate**: output frame ``k`` (shown at ``k / frame_rate`` seconds) is the source frame
  on screen at that moment (frames are repeated or dropped, never blended). Video files use each
  frame's own timestamp (variable frame rates work); arrays and images use ``source_rate``.

Frames are streamed in chunks (:meth:`Movie.chunks`), so an hour-long video is never held in
memory. Video files are decoded with PyAV (FFmpeg): mp4, avi, mov, mkv, webm, gif, ...
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cortexfm.data.errors import DataFormatError
from cortexfm.data.npy import open_array

#: Luma weights of red, green and blue (ITU-R BT.601).
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")
#: Largest fraction of a frame that centre-cropping may discard.
MAX_CROP = 0.5


@dataclass(frozen=True)
class FrameFormat:
    """What a session's frames look like: ``height x width`` pixels at ``frame_rate`` Hz."""

    height: int = 36
    width: int = 64
    frame_rate: float = 30.0

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1 or not self.frame_rate > 0:
            raise ValueError(f"frame size and rate must be positive, got {self}")


class Movie:
    """One stimulus source, opened lazily (see the module docstring for the conversion).

    ``source_rate`` (Hz) is needed for arrays and image folders (default: the target rate);
    ``layout`` says where time is in a ``.npy`` array: ``"thw"`` (time first, the default) or
    ``"hwt"`` (a Sensorium tree's ``data/videos/<i>.npy``).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        source_rate: float | None = None,
        layout: str = "thw",
        fit: str = "crop",
    ) -> None:
        self.path = Path(path)
        if fit not in ("crop", "stretch"):
            raise ValueError(f"fit must be 'crop' or 'stretch', got {fit!r}")
        if layout not in ("thw", "hwt"):
            raise ValueError(f"layout must be 'thw' or 'hwt', got {layout!r}")
        if source_rate is not None and not source_rate > 0:
            raise ValueError(f"source frame rate must be positive, got {source_rate}")
        self.fit, self.layout, self._source_rate = fit, layout, source_rate
        if not self.path.exists():
            raise DataFormatError(self.path, "stimulus file or folder does not exist")
        if self.path.is_dir():
            self.kind = "images"
            self._images = sorted(
                p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not self._images:
                raise DataFormatError(
                    self.path, f"folder holds no images ({', '.join(IMAGE_SUFFIXES)})"
                )
            first = _open_image(self._images[0])
            self.source_size = first.shape[:2]
            self.n_source_frames: int | None = len(self._images)
        elif self.path.suffix.lower() == ".npy":
            self.kind = "npy"
            self._array = open_array(self.path)
            shape = self._array.shape
            if self._array.ndim not in (3, 4) or (
                self._array.ndim == 4 and shape[3] not in (1, 3, 4)
            ):
                raise DataFormatError(
                    self.path,
                    f"array shape {shape}: expected [time, height, width] or "
                    "[time, height, width, channels] with 1, 3 or 4 channels",
                )
            if layout == "hwt":
                self._array = np.moveaxis(self._array, 2, 0)
            self.source_size = self._array.shape[1:3]
            self.n_source_frames = self._array.shape[0]
            self._scale = _float_scale(self._array, self.path)
        else:
            self.kind = "video"
            self.source_size, self._video_rate, self.n_source_frames = _probe_video(self.path)
        if min(self.source_size) < 1 or (self.n_source_frames == 0):
            raise DataFormatError(self.path, "holds no frames")

    @property
    def source_rate(self) -> float | None:
        return self._video_rate if self.kind == "video" else self._source_rate

    # -- conversion --------------------------------------------------------------------------

    def _crop_box(self, target: FrameFormat) -> tuple[int, int, int, int]:
        """``(top, left, height, width)`` of the source region that becomes a frame."""
        h, w = self.source_size
        if self.fit == "stretch":
            return 0, 0, h, w
        aspect = target.width / target.height
        if w / h > aspect:  # too wide: crop the sides
            cw = max(1, round(h * aspect))
            box = (0, (w - cw) // 2, h, cw)
        else:
            ch = max(1, round(w / aspect))
            box = ((h - ch) // 2, 0, ch, w)
        kept = box[2] * box[3] / (h * w)
        if kept < 1 - MAX_CROP:
            raise DataFormatError(
                self.path,
                f"frame size {h}x{w} cannot be converted to {target.height}x{target.width} "
                f"by cropping: it would discard {1 - kept:.0%} of each frame; pass fit='stretch' "
                "(--fit stretch) to stretch it instead",
            )
        return box

    def describe(self, target: FrameFormat) -> str:
        """One line: what the source is and how it becomes the session's frames."""
        h, w = self.source_size
        top, left, ch, cw = self._crop_box(target)
        size = f"{h}x{w}"
        if (ch, cw) != (h, w):
            size += f" centre-cropped to {ch}x{cw}"
        elif self.fit == "stretch" and abs(w / h - target.width / target.height) > 1e-3:
            size += " stretched"
        if (ch, cw) != (target.height, target.width):
            size += f", resized to {target.height}x{target.width}"
        rate = self.source_rate
        timing = (
            "frame times from the file"
            if self.kind == "video"
            else f"{rate or target.frame_rate:g} Hz (source rate)"
        )
        if self.kind == "video" and rate:
            timing = f"{rate:g} fps ({timing})"
        if self.kind == "npy":
            grey = "luma of the channels" if self._array.ndim == 4 else "grey levels as given"
            grey += ", 0-1 values scaled to 0-255" if self._scale != 1 else ""
        else:
            grey = "luma of the decoded frames" if self.kind == "video" else "luma (8-bit RGB)"
        count = f"{self.n_source_frames} frames" if self.n_source_frames else "frames"
        return (
            f"{self.path} ({self.kind}, {count}): {size}; {grey}; {timing} -> "
            f"{target.frame_rate:g} Hz by display time"
        )

    def _convert(self, frame: np.ndarray, target: FrameFormat, box: tuple) -> np.ndarray:
        """One source frame ``[h, w]`` or ``[h, w, c]`` -> ``[height, width]`` float32 0-255."""
        frame = np.asarray(frame, dtype=np.float32)
        if frame.ndim == 3:
            frame = frame[..., 0] if frame.shape[2] == 1 else frame[..., :3] @ LUMA
        top, left, ch, cw = box
        frame = frame[top : top + ch, left : left + cw]
        if frame.shape != (target.height, target.width):
            from PIL import Image  # here: frames at the session's size need no resizing

            shrink = ch >= target.height and cw >= target.width
            resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
            image = Image.fromarray(np.ascontiguousarray(frame), mode="F")
            frame = np.asarray(image.resize((target.width, target.height), resample))
        return frame

    def _source_frames(self) -> Iterator[tuple[float | None, np.ndarray]]:
        """``(display time in s or None, frame)`` in order."""
        if self.kind == "images":
            for path in self._images:
                yield None, _open_image(path)
        elif self.kind == "npy":
            for i in range(self.n_source_frames or 0):
                frame = np.asarray(self._array[i], dtype=np.float32) * self._scale
                if not np.isfinite(frame).all():
                    raise DataFormatError(self.path, f"frame {i} holds NaN or infinite values")
                yield None, frame
        else:
            yield from _decode_video(self.path)

    def chunks(self, target: FrameFormat, chunk: int = 600) -> Iterator[np.ndarray]:
        """The converted movie, ``[<= chunk, height, width]`` float32 arrays in order."""
        box = self._crop_box(target)
        fallback = self.source_rate or target.frame_rate
        buffer: list[np.ndarray] = []
        k = 0  # next output frame
        current: np.ndarray | None = None
        start: float | None = None
        last_time = 0.0
        step = 1.0 / fallback
        eps = 0.1 / target.frame_rate  # containers round timestamps (mkv: to 1 ms)
        for i, (time, frame) in enumerate(self._source_frames()):
            time = i / fallback if time is None else time
            start = time if start is None else start
            time -= start
            while current is not None and k / target.frame_rate < time - eps:
                buffer.append(current)
                k += 1
                if len(buffer) == chunk:
                    yield np.stack(buffer)
                    buffer = []
            if current is not None and time > last_time:
                step = time - last_time
            current, last_time = self._convert(frame, target, box), time
        if current is None:
            raise DataFormatError(self.path, "holds no frames")
        while k / target.frame_rate < last_time + step - eps:  # the last frame's display time
            buffer.append(current)
            k += 1
            if len(buffer) == chunk:
                yield np.stack(buffer)
                buffer = []
        if buffer:
            yield np.stack(buffer)


def _open_image(path: Path) -> np.ndarray:
    """An image file as ``[h, w, 3]`` uint8 RGB."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as err:
        raise DataFormatError(path, f"not a readable image ({err})") from None


def _float_scale(array: np.ndarray, path: Path) -> float:
    """255 for float arrays in 0-1 (checked on up to 100 frames), else 1."""
    if array.dtype.kind != "f":
        return 1.0
    sample = np.asarray(array[:: max(1, array.shape[0] // 100)], dtype=np.float64)
    finite = sample[np.isfinite(sample)]
    if finite.size and finite.min() >= 0 and finite.max() <= 1:
        return 255.0
    return 1.0


def _probe_video(path: Path) -> tuple[tuple[int, int], float | None, int | None]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataFormatError(path, "has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            size = (int(stream.codec_context.height), int(stream.codec_context.width))
            return size, float(rate) if rate else None, int(stream.frames) or None
    except av.error.FFmpegError as err:
        raise DataFormatError(path, f"not a readable video ({err})") from None


def _decode_video(path: Path) -> Iterator[tuple[float | None, np.ndarray]]:
    import av
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()  # one conversion context for every frame (10x faster)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            # slice threads only: frame threads compete with the model's for the cores
            # (benchmarks/predict_speed.py, 2 cores: 2,065-2,130 against 1,770-1,956
            # frames/s with "AUTO")
            stream.thread_type = "SLICE"
            for frame in container.decode(stream):
                luma = _luma_plane(frame)
                if luma is None:
                    luma = reformatter.reformat(frame, format="rgb24").to_ndarray()
                yield frame.time, luma
    except av.error.FFmpegError as err:
        raise DataFormatError(path, f"video could not be decoded ({err})") from None


#: 8-bit pixel formats whose first plane is the luma (Y) at full resolution, and whether
#: their Y spans 0-255 ("j": JPEG range; grey has no chroma to be limited against)
_LUMA_PLANE_FORMATS = {
    **dict.fromkeys(("yuv420p", "yuv422p", "yuv444p", "yuv411p", "yuv440p", "nv12", "nv21"), False),
    **dict.fromkeys(("yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p", "gray"), True),
}
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


def _luma_plane(frame) -> np.ndarray | None:  # noqa: ANN001 (av.VideoFrame)
    """An 8-bit YUV or grey frame's luma ``[h, w]`` float32 in 0-255, or None for other formats.

    Reading the Y plane skips a YUV -> RGB -> luma round trip (``Movie.chunks`` of the
    10-minute 36x64 H.264 movie of ``benchmarks/predict_speed.py``: 0.71-0.75 s against 0.89 s)."""
    full_range = _LUMA_PLANE_FORMATS.get(frame.format.name)
    if full_range is None:
        return None
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    luma = rows[: frame.height, : frame.width].astype(np.float32)
    if full_range or frame.color_range == _FULL_RANGE:
        return luma
    return np.clip((luma - 16.0) * (255.0 / 219.0), 0.0, 255.0)
