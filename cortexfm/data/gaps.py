"""Non-finite values in recordings: end-of-trial padding, gaps inside a trial, and Inf.

Real traces are NaN where a frame was dropped or motion-corrupted, and Sensorium trees pad
every trial with NaN frames up to a common length. cortexfm tells them apart and treats each
the same way in every layout and command:

- **Padding**: the NaN frames after a trial's last finite frame. A trial's length is the
  shortest of its modalities' lengths without padding (first row of each file: pixel (0, 0),
  neuron 0, the first behaviour and pupil channel).
- **Gaps in the inputs** (NaN frames inside a trial in the video, behaviour or pupil centre)
  are filled over the whole trial, whatever part of it is read, so a training window and a
  whole trial see the same values: video frames hold the last valid frame (the first valid
  one before it), behaviour and pupil centre are interpolated linearly in time per channel.
  A channel with no finite value in a trial cannot be filled: a :class:`DataFormatError`.
- **Gaps in the responses** stay NaN: the loss, the statistics and every metric leave them
  out (masked), and training logs how many response values were masked.
- **Inf** anywhere is refused with a :class:`DataFormatError` naming the file and frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cortexfm.data.errors import DataFormatError

#: Modalities given to the model as inputs; their gaps are filled.
INPUT_MODALITIES = ("video", "behavior", "pupil_center")


def valid_length(series: np.ndarray) -> int:
    """Frames before a 1-D series' trailing NaN padding (index after its last finite value)."""
    if series.shape[0] == 0 or not np.issubdtype(series.dtype, np.floating):
        return int(series.shape[0])
    if np.isfinite(series[-1]):
        return int(series.shape[0])
    finite = np.flatnonzero(np.isfinite(np.asarray(series)))
    return int(finite[-1]) + 1 if finite.size else 0


def frame_ranges(frames: np.ndarray, limit: int = 3) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"`` (at most ``limit`` ranges, then a count)."""
    frames = np.unique(np.asarray(frames, dtype=np.int64))
    if frames.size == 0:
        return "none"
    breaks = np.flatnonzero(np.diff(frames) > 1)
    starts = np.r_[frames[0], frames[breaks + 1]]
    stops = np.r_[frames[breaks], frames[-1]]
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in zip(starts, stops, strict=True)]
    more = f" and {len(parts) - limit} more range(s)" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


def check_no_inf(array: np.ndarray, path: Path, modality: str) -> None:
    """Refuse infinite values (``array`` is time first) with one line naming the frames."""
    inf = np.isinf(array)
    if inf.any():
        frames = np.flatnonzero(inf.reshape(inf.shape[0], -1).any(axis=1))
        raise DataFormatError(
            path,
            f"{modality} has infinite values at frame(s) {frame_ranges(frames)}; "
            "replace them with NaN (a gap) or fix the recording",
        )


def fill_input_gaps(array: np.ndarray, modality: str, path: Path) -> np.ndarray:
    """Fill the NaN frames of one trial's input ``[time, ...]`` (see the module docstring)."""
    if modality not in INPUT_MODALITIES:
        raise ValueError(f"only inputs {INPUT_MODALITIES} are filled, not {modality!r}")
    out = np.array(array, dtype=np.float32, copy=True)
    t = np.arange(out.shape[0])
    if modality == "video":
        bad = ~np.isfinite(out.reshape(out.shape[0], -1)).all(axis=1)
        good = np.flatnonzero(~bad)
        if good.size == 0:
            raise DataFormatError(path, "video has no complete (finite) frame in this trial")
        # the last valid frame at or before each frame; the first valid one before any
        source = good[np.clip(np.searchsorted(good, t, side="right") - 1, 0, None)]
        return out[source]
    for channel in range(out.shape[1]):
        x = out[:, channel]
        ok = np.isfinite(x)
        if ok.all():
            continue
        if not ok.any():
            raise DataFormatError(
                path, f"{modality} channel {channel} has no finite value in this trial"
            )
        out[:, channel] = np.interp(t, t[ok], x[ok])
    return out
