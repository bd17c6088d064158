"""Sessions from formats where every signal runs on its own clock (NWB, experanto).

A Sensorium tree stores every modality already on the stimulus frames. NWB and experanto store
each signal with its own timestamps: the screen at its refresh times, two-photon traces at the
scan rate (each imaging field, or each neuron, with its own offset), the treadmill and the eye
camera at theirs. This module puts them on one clock, the way cortexfm reads them:

- **frame times.** A trial runs from its start (the interval's start time, else its first
  stimulus frame) to its end (the interval's stop time, else the next stimulus event). Its
  frames are a regular grid at ``frame_rate`` (30 Hz, the model's rate) over that span
  (``round(duration x rate)`` frames); the picture at each grid time is the stimulus frame on
  screen then (the last frame shown at or before it, with a quarter-frame tolerance for
  timestamp jitter).
- **signals** (responses, pupil, treadmill, eye position) are **linearly interpolated** at the
  frame times from their own samples; a column's sample times are the signal's timestamps plus
  that column's offset (``offsets``: the scan phase of an imaging field or a neuron). A NaN
  sample makes the frames next to it NaN: a gap, handled as :mod:`cortexfm.data.gaps` says.
- **a truncated recording** (a signal that ends before a trial does, or starts after it) is
  refused when the session opens, naming the file and the field.

Only timestamps are read when a session opens; signal values are read per window, a few rows
around the requested times (the arrays stay on disk: memory-mapped or HDF5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cortexfm.data.errors import DataFormatError
from cortexfm.data.session import MODALITIES, Session

#: Picture lookup tolerance, in frames at the session's frame rate.
FRAME_TOLERANCE = 0.25


@dataclass
class TimedSignal:
    """One recorded signal: ``data [samples, columns]`` sampled at ``timestamps [samples]``
    (seconds, increasing) plus a per-column ``offsets [columns]`` (seconds, default 0).

    ``data`` is any array that supports row slicing (``np.memmap``, ``h5py.Dataset``), or a
    function returning one (so a reader can reopen its file in each worker process);
    ``columns`` selects the columns used, in order. ``source`` and ``field`` name it in errors.
    """

    data: Any
    timestamps: np.ndarray
    source: Path
    field: str
    columns: Sequence[int] | None = None
    offsets: np.ndarray | None = None
    rate: float | None = None  # when the samples are regular (start + i / rate): no search

    def __post_init__(self) -> None:
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64).reshape(-1)
        n = len(self.timestamps)
        shape = tuple(self.array.shape)
        if len(shape) == 1:
            shape = (shape[0], 1)
        if len(shape) != 2 or shape[0] != n:
            raise DataFormatError(
                self.source,
                f"{self.field}: data shape {tuple(self.array.shape)} does not match its {n} "
                "timestamps (expected (timestamps, signals))",
            )
        if n < 2:
            raise DataFormatError(self.source, f"{self.field}: fewer than 2 samples")
        if not np.isfinite(self.timestamps).all() or np.any(np.diff(self.timestamps) <= 0):
            raise DataFormatError(
                self.source, f"{self.field}: timestamps must be finite and strictly increasing"
            )
        self._width = shape[1]
        cols = list(range(self._width)) if self.columns is None else list(self.columns)
        if any(not 0 <= c < self._width for c in cols):
            raise DataFormatError(
                self.source, f"{self.field}: has {self._width} signal(s), needs columns {cols}"
            )
        self.columns = cols
        self._subset = cols != list(range(self._width))
        if self.offsets is None:
            self.offsets = np.zeros(len(cols))
        else:
            self.offsets = np.asarray(self.offsets, dtype=np.float64).reshape(-1)
            if len(self.offsets) == self._width and len(cols) != self._width:
                self.offsets = self.offsets[cols]
            if len(self.offsets) != len(cols) or not np.isfinite(self.offsets).all():
                raise DataFormatError(
                    self.source,
                    f"{self.field}: {len(self.offsets)} finite offsets expected one per signal "
                    f"({len(cols)})",
                )
        if self.rate:  # sample position of column c at time t: t * rate - origin[c]
            origin = (self.timestamps[0] + self.offsets) * self.rate
            self._origin_whole = np.floor(origin)
            self._origin_fraction = (origin - self._origin_whole).astype(np.float32)
            self._origin_whole_32 = self._origin_whole.astype(np.int32)

    @property
    def array(self) -> Any:
        return self.data() if callable(self.data) else self.data

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    @property
    def span(self) -> tuple[float, float]:
        """The times every column has a sample before and after."""
        return (
            float(self.timestamps[0] + self.offsets.max()),
            float(self.timestamps[-1] + self.offsets.min()),
        )

    def check_covers(self, start: float, stop: float, what: str) -> None:
        first, last = self.span
        if start < first - 1e-9 or stop > last + 1e-9:
            raise DataFormatError(
                self.source,
                f"{self.field}: recorded from {first:.3f} s to {last:.3f} s, but {what} runs "
                f"from {start:.3f} s to {stop:.3f} s (a truncated recording, or clocks that "
                "do not match)",
            )

    def _rows(self, lo: int, hi: int) -> np.ndarray:
        # np.array: a plain in-memory copy of just these rows
        block = np.array(self.array[lo:hi], dtype=np.float32)
        if block.ndim == 1:
            block = block[:, None]
        if self._subset:
            block = block[:, self.columns]
        return np.ascontiguousarray(block)

    def sample(self, times: np.ndarray) -> np.ndarray:
        """Linear interpolation at increasing ``times [T]`` -> ``[T, columns]`` float32."""
        times = np.asarray(times, dtype=np.float64)
        if not np.any(self.offsets):
            return self._sample_shared(times)
        if self.rate:
            return self._sample_regular_shifted(times)
        # each column on its own clock: fractional sample positions [T, columns]
        query = times[:, None] - self.offsets[None, :]
        ts = self.timestamps
        lower = np.searchsorted(ts, query, side="right") - 1
        np.clip(lower, 0, len(ts) - 2, out=lower)
        weight = ((query - ts[lower]) / (ts[lower + 1] - ts[lower])).astype(np.float32)
        lo, hi = int(lower.min()), int(lower.max()) + 2
        index = (lower - lo) * self.n_columns + np.arange(self.n_columns)
        return self._lerp(self._rows(lo, hi), index, weight)

    def _sample_regular_shifted(self, times: np.ndarray) -> np.ndarray:
        """Regular samples, a clock offset per column: column c's sample position at time t is
        ``t * rate - origin[c]``, split into whole and fractional parts so that the [T, C]
        arithmetic is on small numbers (float32) and int32 indices. Work arrays are reused
        between calls: fresh multi-megabyte temporaries cost more in page faults than the
        arithmetic itself."""
        width = self.n_columns
        position = times * self.rate
        whole = np.floor(position)
        fraction = (position - whole).astype(np.float32)
        lo = max(int(whole[0] - self._origin_whole.max()) - 1, 0)
        hi = min(int(whole[-1] - self._origin_whole.min()) + 2, len(self.timestamps))
        weight, borrow, index, before = self._workspace(len(times))
        np.subtract(fraction[:, None], self._origin_fraction[None, :], out=weight)
        np.less(weight, 0, out=borrow)  # the column's sample before t is one further back
        np.add(weight, borrow, out=weight)
        rows = (whole - lo).astype(np.int32)
        np.subtract(rows[:, None], borrow, out=index, dtype=np.int32)
        index -= self._origin_whole_32[None, :]
        if hi == len(self.timestamps):  # a time may fall exactly on the last sample
            past = index > hi - lo - 2
            index[past] -= 1
            weight[past] = 1.0
        index *= width
        index += np.arange(width, dtype=np.int32)[None, :]
        flat = self._rows(lo, hi).reshape(-1)
        flat.take(index, out=before)
        index += width
        out = flat.take(index)
        out -= before
        out *= weight
        out += before
        return out

    def _workspace(self, n: int) -> tuple[np.ndarray, ...]:
        """Reused ``[n, columns]`` work arrays: weight, borrow, index, the samples before."""
        if getattr(self, "_work", None) is None or self._work[0].shape[0] != n:
            shape = (n, self.n_columns)
            self._work = (
                np.empty(shape, np.float32),
                np.empty(shape, bool),
                np.empty(shape, np.int32),
                np.empty(shape, np.float32),
            )
        return self._work

    def _lerp(self, block: np.ndarray, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """``block`` rows flattened; ``index`` [T, C] of each sample before; linear blend."""
        flat = block.reshape(-1)
        before = flat.take(index)
        out = flat.take(index + block.shape[1])
        out -= before
        out *= weight
        out += before
        return out

    def _sample_shared(self, times: np.ndarray) -> np.ndarray:
        ts = self.timestamps
        if self.rate:
            position = (times - ts[0]) * self.rate
            lower = np.minimum(position.astype(np.int64), len(ts) - 2)
            weight = position - lower
        else:
            lower = np.clip(np.searchsorted(ts, times, side="right") - 1, 0, len(ts) - 2)
            weight = (times - ts[lower]) / (ts[lower + 1] - ts[lower])
        lo = int(lower[0])
        block = self._rows(lo, int(lower[-1]) + 2)
        before = block[lower - lo]
        out = block[lower - lo + 1] - before
        out *= weight.astype(np.float32)[:, None]
        out += before
        return out


@dataclass
class TimedTrial:
    """One trial: its stimulus frames' indices and display times, where it ends, its labels."""

    frame_indices: np.ndarray  # into the frame store, in display order
    frame_times: np.ndarray  # display time of each of those frames, seconds
    start: float  # the trial starts here, seconds
    stop: float  # the trial ends here (the next stimulus event), seconds
    tier: str
    video_id: str
    stimulus_type: str


class FrameStore:
    """The stimulus frames, read by index: ``read(indices) -> [len, height, width]`` float32."""

    frame_size: tuple[int, int]
    source: Path

    def read(self, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class TimedSession(Session):
    """A session whose modalities are put on the stimulus frame clock (module docstring).

    Subclasses set ``frames`` (a :class:`FrameStore`), ``timed_trials``, ``signals`` (modality
    -> list of :class:`TimedSignal`, their columns side by side), ``unit_ids``,
    ``coordinates``, ``neuron_extensions`` and ``info`` and then call :meth:`_finish`.
    """

    frames: FrameStore
    timed_trials: list[TimedTrial]
    signals: dict[str, list[TimedSignal]]
    target_rate: float = 30.0

    def __init__(self, path: str | Path) -> None:  # files are sessions too: no folder check
        self.path = Path(path)
        self.info = {}

    def _finish(self) -> None:
        """Build the frame grid of every trial and check every signal covers it."""
        self.info.setdefault("frame_rate", self.target_rate)
        if not self.timed_trials:
            raise DataFormatError(self.path, "no stimulus trials found")
        for modality in ("responses", "behavior", "pupil_center"):
            if not self.signals.get(modality):
                raise DataFormatError(self.path, f"no signal found for {modality}")
        self._grid: list[np.ndarray] = []
        self._pictures: list[np.ndarray] = []
        step = 1.0 / self.target_rate
        for k, trial in enumerate(self.timed_trials):
            start = trial.start
            n = int(np.floor((trial.stop - start) / step + 0.5))
            if n < 1:
                raise DataFormatError(
                    self.frames.source,
                    f"trial {k}: shorter than one frame at {self.target_rate} Hz",
                )
            grid = start + step * np.arange(n)
            shown = np.searchsorted(trial.frame_times, grid + FRAME_TOLERANCE * step, "right")
            self._grid.append(grid)
            self._pictures.append(trial.frame_indices[np.clip(shown - 1, 0, None)])
            for signals in self.signals.values():
                for signal in signals:
                    signal.check_covers(grid[0], grid[-1], f"trial {k}")
        self.tiers = np.array([t.tier for t in self.timed_trials], dtype=object)
        self._video_ids = np.array([t.video_id for t in self.timed_trials], dtype=object)
        self._stimulus_types = np.array([t.stimulus_type for t in self.timed_trials], dtype=object)
        n_responses = sum(s.n_columns for s in self.signals["responses"])
        if n_responses != len(self.unit_ids):
            raise DataFormatError(
                self.path, f"{n_responses} response traces but {len(self.unit_ids)} unit ids"
            )
        for modality in ("behavior", "pupil_center"):
            width = sum(s.n_columns for s in self.signals[modality])
            if width != 2:
                raise DataFormatError(self.path, f"{modality}: {width} columns, expected 2")

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.frames.frame_size

    @property
    def video_ids(self) -> np.ndarray:  # type: ignore[override]
        return self._video_ids

    @property
    def stimulus_types(self) -> np.ndarray:  # type: ignore[override]
        return self._stimulus_types

    def frame_times(self, trial_id: int) -> np.ndarray:
        """The time (seconds, the file's clock) of each of a trial's frames."""
        self._check_trial(trial_id)
        return self._grid[trial_id]

    def _trial_length(self, trial_id: int) -> int:
        return len(self._grid[trial_id])

    def _read(self, trial_id: int, modality: str, start: int, stop: int) -> np.ndarray:
        if modality == "video":
            return self.frames.read(self._pictures[trial_id][start:stop])
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}")
        times = self._grid[trial_id][start:stop]
        if len(times) == 0:
            width = sum(s.n_columns for s in self.signals[modality])
            return np.zeros((0, width), dtype=np.float32)
        parts = [signal.sample(times) for signal in self.signals[modality]]
        if len(parts) == 1:
            return np.ascontiguousarray(parts[0], dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)

    def _source(self, trial_id: int, modality: str) -> Path:
        if modality == "video":
            return self.frames.source
        return self.signals[modality][0].source


def repeat_tiers(video_ids: Sequence[str], natural: Sequence[bool]) -> list[str]:
    """The tier rule of formats without tiers: a clip shown more than once is ``oracle`` (the
    repeats that measure the noise ceiling); other natural clips are ``train``; other
    (parametric) stimuli shown once are ``none``, so they never enter training."""
    counts: dict[str, int] = {}
    for v in video_ids:
        counts[v] = counts.get(v, 0) + 1
    return [
        "oracle" if counts[v] > 1 else ("train" if is_natural else "none")
        for v, is_natural in zip(video_ids, natural, strict=True)
    ]
