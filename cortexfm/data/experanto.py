"""experanto folders (the Sensorium successors' layout, used by OmniMouse) read in place.

One folder per modality, each on its own clock (layout as experanto's own readers use it)::

    <experiment>/
      screen/
        meta.yml               modality: screen
        timestamps.npy         (frames,) display time of every frame, all trials in order
        meta/<NNNNN>.yml       one per trial: modality (video | image | blank | invalid),
                               first_frame_idx, num_frames, image_size, tier, condition_hash
        data/<NNNNN>.npy       the trial's frames (frames, height, width) or one image (h, w)
      responses/ eye_tracker/ treadmill/
        meta.yml               modality: sequence, sampling_rate, start_time, n_signals,
                               n_timestamps, dtype, is_mem_mapped
        data.mem | data.npy    (n_timestamps, n_signals)
        timestamps.npy         optional; else start_time + i / sampling_rate
        meta/phase_shifts.npy  optional (n_signals,) per-signal clock offset, seconds
        meta/unit_ids.npy, meta/cell_motor_coordinates.npy   optional (responses)

Mapping: each ``video`` or ``image`` screen trial is a cortexfm trial (``blank`` and ``invalid``
ones are the gaps between); it ends when the next screen frame is shown. ``tier`` and
``condition_hash`` (the clip id) come from the trial's yml; without a ``tier`` the rule of
:func:`cortexfm.data.timed.repeat_tiers` applies. ``stimulus_type`` (or ``stim_type``) names
the stimulus, else the trial's modality. Behaviour is ``[pupil dilation, running]`` from
``eye_tracker`` and ``treadmill`` (column 0); the pupil centre is ``eye_tracker`` columns
(x, y). Eye tracker columns: by ``signal_names`` in its meta.yml when given (names containing
"x", "y" and "dilation"/"radius"/"area"), else 0, 1 = centre x, y and 2 = dilation.
Everything is put on the frame clock as :mod:`cortexfm.data.timed` says. Ignored: other
modalities (poses, ...), the folders' ``means.npy``/``stds.npy`` (cortexfm computes its own
statistics), and the ``combined_meta.json`` experanto writes (cortexfm writes nothing here).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import yaml

from cortexfm.data import schema
from cortexfm.data.errors import DataFormatError
from cortexfm.data.npy import load_small, open_array
from cortexfm.data.timed import FrameStore, TimedSession, TimedSignal, TimedTrial, repeat_tiers

SEQUENCES = ("responses", "eye_tracker", "treadmill")


def is_experanto_folder(path: Path) -> bool:
    path = Path(path)
    return (path / "screen" / "meta.yml").is_file() and (path / "responses" / "meta.yml").is_file()


def _yaml(path: Path) -> dict:
    try:
        value = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise DataFormatError(path, f"not readable YAML ({err})") from None
    if not isinstance(value, dict):
        raise DataFormatError(path, "must hold a YAML mapping")
    return value


def _field(meta: dict, key: str, path: Path, kind: type = float):
    if key not in meta:
        raise DataFormatError(path, f"field {key!r} is missing")
    try:
        return kind(meta[key])
    except (TypeError, ValueError):
        raise DataFormatError(
            path, f"field {key!r} = {meta[key]!r} is not a {kind.__name__}"
        ) from None


def read_sequence(folder: Path, columns=None) -> TimedSignal:
    """One ``sequence`` modality folder as a :class:`TimedSignal` (arrays stay on disk)."""
    meta_path = folder / "meta.yml"
    if not meta_path.is_file():
        raise DataFormatError(meta_path, "file is missing")
    meta = _yaml(meta_path)
    n = _field(meta, "n_timestamps", meta_path, int)
    width = _field(meta, "n_signals", meta_path, int)
    if meta.get("is_mem_mapped", False):
        path = folder / "data.mem"
        if not path.is_file():
            raise DataFormatError(path, "file is missing (meta.yml says is_mem_mapped)")
        dtype = np.dtype(str(meta.get("dtype", "float32")))
        expected = n * width * dtype.itemsize
        if path.stat().st_size < expected:
            raise DataFormatError(
                path,
                f"{path.stat().st_size} bytes, but meta.yml's n_timestamps = {n} x "
                f"n_signals = {width} x {dtype} needs {expected} (a truncated recording?)",
            )
        data = np.memmap(path, dtype=dtype, mode="r", shape=(n, width))
    else:
        path = folder / "data.npy"
        data = open_array(path)
        if data.shape[:1] != (n,):
            raise DataFormatError(
                path, f"shape {data.shape}, but meta.yml's n_timestamps is {n} (truncated?)"
            )
    stamps = folder / "timestamps.npy"
    rate = None
    if stamps.is_file():
        times = load_small(stamps)
        if times.shape != (n,):
            raise DataFormatError(
                stamps, f"shape {times.shape}, expected ({n},) = meta.yml's n_timestamps"
            )
    else:
        rate = _field(meta, "sampling_rate", meta_path)
        times = _field(meta, "start_time", meta_path) + np.arange(n) / rate
    shifts = folder / "meta" / "phase_shifts.npy"
    offsets = load_small(shifts) if shifts.is_file() else None
    if offsets is not None and offsets.shape != (width,):
        raise DataFormatError(shifts, f"shape {offsets.shape}, expected ({width},) = n_signals")
    return TimedSignal(data, times, path, folder.name, columns=columns, offsets=offsets, rate=rate)


class _ScreenFrames(FrameStore):
    """Frames by global index, read from the trial file that holds each."""

    def __init__(self, rows: list[dict], files: dict[int, Path], n_frames: int, size, source):
        self.files, self.frame_size, self.source = files, size, source
        self._open_files: dict[int, np.ndarray] = {}
        self.starts = {k: int(row["frames"][0]) for k, row in enumerate(rows)}
        self.trial_of = np.full(n_frames, -1)
        for k, row in enumerate(rows):
            self.trial_of[row["frames"]] = k

    def _open(self, trial: int) -> np.ndarray:
        """The trial's memory-mapped frames (the last few kept open)."""
        if trial not in self._open_files:
            if len(self._open_files) >= 64:
                self._open_files.pop(next(iter(self._open_files)))
            self._open_files[trial] = open_array(self.files[trial])
        return self._open_files[trial]

    def read(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), *self.frame_size), dtype=np.float32)
        trial_of = self.trial_of[indices]
        for trial in np.unique(trial_of):
            rows = np.flatnonzero(trial_of == trial)
            array = self._open(int(trial))
            local = indices[rows] - self.starts[int(trial)]
            frames = array[None] if array.ndim == 2 else array
            out[rows] = frames[local]
        return out


class ExperantoSession(TimedSession):
    """An experanto experiment folder as a cortexfm session."""

    layout = "experanto"

    def __init__(self, path: str | Path, frame_rate: float = 30.0) -> None:
        super().__init__(path)
        if not self.path.is_dir():
            raise DataFormatError(self.path, "experiment folder does not exist")
        self.target_rate = float(frame_rate)
        self.info = {"session_id": self.path.name}
        info_path = self.path / "meta" / "session.json"
        if info_path.is_file():
            self.info.update(self._read_session_json())
        self.timed_trials = self._screen()
        eye_meta = (
            _yaml(self.path / "eye_tracker" / "meta.yml")
            if (self.path / "eye_tracker" / "meta.yml").is_file()
            else {}
        )
        x, y, dilation = self._eye_columns(eye_meta)
        self.signals = {
            "responses": [read_sequence(self.path / "responses")],
            "behavior": [
                read_sequence(self.path / "eye_tracker", [dilation]),
                read_sequence(self.path / "treadmill", [0]),
            ],
            "pupil_center": [read_sequence(self.path / "eye_tracker", [x, y])],
        }
        n = self.signals["responses"][0].n_columns
        meta = self.path / "responses" / "meta"
        ids = meta / "unit_ids.npy"
        self.unit_ids = load_small(ids).reshape(-1) if ids.is_file() else np.arange(n)
        if len(self.unit_ids) != n:
            raise DataFormatError(ids, f"{len(self.unit_ids)} unit ids for {n} response signals")
        coords = meta / "cell_motor_coordinates.npy"
        self.coordinates = (
            load_small(coords).astype(float) if coords.is_file() else np.full((n, 3), np.nan)
        )
        if self.coordinates.shape != (n, 3):
            raise DataFormatError(coords, f"shape {self.coordinates.shape}, expected ({n}, 3)")
        self.neuron_extensions = {}
        self._finish()

    def _eye_columns(self, meta: dict) -> tuple[int, int, int]:
        names = [str(n).lower() for n in meta.get("signal_names", [])]
        if not names:
            return 0, 1, 2

        def find(pattern: str) -> int:
            for i, name in enumerate(names):
                if re.search(pattern, name):
                    return i
            raise DataFormatError(
                self.path / "eye_tracker" / "meta.yml",
                f"signal_names {names} has no name matching {pattern!r}",
            )

        return (
            find(r"(^|_)x$|center_x"),
            find(r"(^|_)y$|center_y"),
            find("dilation|radius|area|size"),
        )

    def _screen(self) -> list[TimedTrial]:
        screen = self.path / "screen"
        stamps = screen / "timestamps.npy"
        if not stamps.is_file():
            raise DataFormatError(stamps, "file is missing")
        times = load_small(stamps).astype(np.float64).reshape(-1)
        metas = sorted((screen / "meta").glob("*.yml"), key=lambda p: p.stem)
        if not metas:
            raise DataFormatError(screen / "meta", "no trial .yml files")
        rows, files, size = [], {}, None
        for meta_path in metas:
            if not re.fullmatch(r"\d+", meta_path.stem):
                continue
            meta = _yaml(meta_path)
            kind = str(meta.get("modality", "video")).lower()
            if kind in ("blank", "invalid"):
                continue
            first = _field(meta, "first_frame_idx", meta_path, int)
            count = 1 if kind == "image" else _field(meta, "num_frames", meta_path, int)
            if first + count > len(times):
                raise DataFormatError(
                    stamps,
                    f"{len(times)} timestamps, but {meta_path.name} has frames up to "
                    f"{first + count} (a truncated recording?)",
                )
            data = screen / "data" / f"{meta_path.stem}.npy"
            if not data.is_file():
                raise DataFormatError(data, "file is missing (only .npy frames are read)")
            shape = open_array(data).shape
            frames_shape = shape if len(shape) == 3 else (1, *shape)
            if len(frames_shape) != 3 or frames_shape[0] != count:
                raise DataFormatError(
                    data, f"shape {shape}, expected ({count}, height, width) from {meta_path.name}"
                )
            if size is None:
                size = frames_shape[1:]
            elif frames_shape[1:] != size:
                raise DataFormatError(data, f"frame size {frames_shape[1:]}, others have {size}")
            k = len(rows)
            files[k] = data
            stop = (
                times[first + count]
                if first + count < len(times)
                else (times[first + count - 1] + np.median(np.diff(times)))
            )
            rows.append(
                dict(
                    frames=np.arange(first, first + count),
                    stop=float(stop),
                    tier=meta.get("tier"),
                    video_id=str(meta.get("condition_hash", meta.get("video_id", meta_path.stem))),
                    kind=str(meta.get("stimulus_type", meta.get("stim_type", kind))),
                    where=meta_path,
                )
            )
        if not rows:
            raise DataFormatError(screen / "meta", "no video or image trials")
        self.frames = _ScreenFrames(rows, files, len(times), tuple(size), screen / "data")
        fallback = repeat_tiers([r["video_id"] for r in rows], [True] * len(rows))
        trials = []
        for row, default in zip(rows, fallback, strict=True):
            tier = default if row["tier"] is None else str(row["tier"])
            if tier not in schema.KNOWN_TIERS:
                raise DataFormatError(
                    row["where"], f"tier {tier!r} unknown; known: {sorted(schema.KNOWN_TIERS)}"
                )
            trials.append(
                TimedTrial(
                    row["frames"],
                    times[row["frames"]],
                    float(times[row["frames"][0]]),
                    row["stop"],
                    tier,
                    row["video_id"],
                    row["kind"],
                )
            )
        return trials
