"""NWB files (the MICrONS functional data, DANDI 000402) read in place as a session.

Read with ``pynwb`` (``pip install "cortexfm[nwb]"``), lazily: opening reads the file's
structure, trial tables and timestamps; frames and traces are read per window from the HDF5
datasets. What is read, by NWB path, and what it becomes:

- **stimulus frames**: the ``ImageSeries`` in ``/acquisition`` or ``/stimulus`` (the one whose
  name mentions "stimulus" or "video" when there are several), ``[frames, height, width]``
  (a trailing colour axis is averaged), grey levels 0-255, with its ``timestamps`` (or
  ``starting_time`` + ``rate``). Frames kept in external files are not read (a clear error).
- **trials**: every ``TimeIntervals`` table in ``/intervals`` (MICrONS: ``Clip``, ``Monet2``,
  ``Trippy``) and ``/intervals/trials`` with ``start_time`` / ``stop_time``; the clip id is the
  ``condition_hash`` (else ``movie_name``), the stimulus type its ``stimulus_type`` column
  (else the table's name). Tiers: see :func:`cortexfm.data.timed.repeat_tiers` (natural
  movies = tables or types named like "clip", "movie" or "natural").
- **responses**: the ``RoiResponseSeries`` of ``/processing/ophys`` in a container whose name
  says "deconvolved" (else ``Fluorescence``), ``[time, rois]`` each with its own timestamps
  (a mesoscope's fields are scanned one after another: their clocks differ), side by side.
  Unit ids: the plane segmentation's ``unit_id`` column, else its row ids. Positions: its
  ``x, y, z`` columns, else the centroid of each ``image_mask`` (pixels, scaled by the imaging
  plane's ``grid_spacing`` and moved by its ``origin_coords``, in µm; cached in the cache
  directory), else unknown (NaN).
- **behaviour**: ``[pupil_major_radius`` (``PupilTracking``), ``treadmill_velocity]``;
  **pupil centre**: ``EyeTracking/eye_position`` (x, y).

Everything is resampled onto the stimulus frame clock as :mod:`cortexfm.data.timed` says.
Ignored: raw imaging (``TwoPhotonSeries``), segmentation images, per-trial stimulus parameters
other than those above, anything in other processing modules.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from cortexfm.atomic import save_npy_atomic
from cortexfm.data.cache import session_cache_dir
from cortexfm.data.errors import DataFormatError
from cortexfm.data.fnn import natural_key
from cortexfm.data.npy import load_small
from cortexfm.data.timed import FrameStore, TimedSession, TimedSignal, TimedTrial, repeat_tiers

NATURAL = re.compile(r"clip|movie|natural", re.IGNORECASE)


def is_nwb_file(path: Path) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() == ".nwb"


def _pynwb():
    try:
        import pynwb
    except ImportError:
        raise ImportError(
            "reading NWB files needs pynwb: pip install 'cortexfm[nwb]' (or pip install pynwb)"
        ) from None
    return pynwb


class _H5:
    """The file's HDF5 datasets by path, reopened in each process (forked loader workers)."""

    def __init__(self, path: Path) -> None:
        self.path, self._pid, self._datasets = path, -1, {}

    def __call__(self, name: str) -> Any:
        if self._pid != os.getpid():
            import h5py

            self._file, self._pid, self._datasets = h5py.File(self.path, "r"), os.getpid(), {}
        if name not in self._datasets:
            self._datasets[name] = self._file[name]
        return self._datasets[name]


def _times(series: Any, path: Path, what: str) -> np.ndarray:
    """A series' sample times: its ``timestamps``, else ``starting_time + i / rate``."""
    n = int(series.data.shape[0])
    if series.timestamps is not None:
        times = np.asarray(series.timestamps[:], dtype=np.float64)
        if len(times) != n:
            raise DataFormatError(
                path, f"{what}: {len(times)} timestamps for {n} samples (truncated?)"
            )
        return times
    if series.rate is None:
        raise DataFormatError(path, f"{what}: neither timestamps nor a rate")
    return float(series.starting_time or 0.0) + np.arange(n) / float(series.rate)


def _signal(h5: _H5, series: Any, path: Path, what: str, columns=None) -> TimedSignal:
    name = series.data.name  # the HDF5 dataset's path
    return TimedSignal(
        data=lambda: h5(name),
        timestamps=_times(series, path, what),
        source=path,
        field=what,
        columns=columns,
    )


class _NwbFrames(FrameStore):
    def __init__(self, h5: _H5, series: Any, path: Path, what: str) -> None:
        self.h5, self.name, self.source = h5, series.data.name, path
        shape = tuple(series.data.shape)
        if len(shape) not in (3, 4):
            raise DataFormatError(
                path, f"{what}: frames of shape {shape}, expected (frames, height, width[, 3])"
            )
        self.frame_size = (int(shape[1]), int(shape[2]))

    def read(self, indices: np.ndarray) -> np.ndarray:
        if len(indices) == 0:
            return np.zeros((0, *self.frame_size), dtype=np.float32)
        first, last = int(indices.min()), int(indices.max())
        # one contiguous read of the span (h5py fancy indexing is slow), then pick the frames
        block = np.asarray(self.h5(self.name)[first : last + 1], dtype=np.float32)
        out = block[indices - first]
        return out.mean(axis=-1) if out.ndim == 4 else out


def _mask_centroids(masks: Any, n: int) -> np.ndarray:
    """``[rois, 2]`` (x, y) pixel centroids of ``masks [rois, H, W]``, 64 rois at a time."""
    centroids = np.zeros((n, 2))
    for lo in range(0, n, 64):  # a few tens of MB at a time
        block = np.asarray(masks[lo : lo + 64], dtype=np.float64)
        total = block.sum(axis=(1, 2)).clip(min=1e-12)
        centroids[lo : lo + 64, 0] = (block.sum(axis=1) * np.arange(block.shape[2])).sum(1) / total
        centroids[lo : lo + 64, 1] = (block.sum(axis=2) * np.arange(block.shape[1])).sum(1) / total
    return centroids


def _to_um(plane: Any, unit_field: str) -> float:
    unit = str(getattr(plane, unit_field, "meters") or "meters").lower()
    return {"meters": 1e6, "meter": 1e6, "m": 1e6, "millimeters": 1e3, "mm": 1e3}.get(unit, 1.0)


def _find(container: dict, *patterns: str) -> Any:
    for pattern in patterns:
        for name, obj in container.items():
            if re.search(pattern, name, re.IGNORECASE):
                return obj
    return None


class NwbSession(TimedSession):
    """One NWB file (one scan) as a cortexfm session."""

    layout = "nwb"

    def __init__(self, path: str | Path, frame_rate: float = 30.0) -> None:
        super().__init__(path)
        self.target_rate = float(frame_rate)
        pynwb = _pynwb()
        try:
            self._io = pynwb.NWBHDF5IO(str(self.path), "r")
            nwb = self._io.read()
        except Exception as err:  # h5py/pynwb raise many types for a broken file
            raise DataFormatError(self.path, f"not a readable NWB file ({err})") from None
        h5 = _H5(self.path)
        self.info = {
            "session_id": str(nwb.session_id or self.path.stem),
            "mouse_id": str(getattr(nwb.subject, "subject_id", None) or self.path.stem),
        }
        self.frames, frame_times = self._stimulus(nwb, h5)
        self.timed_trials = self._trials(nwb, frame_times)
        self.signals = {
            "responses": self._responses(nwb, h5),
            "behavior": self._behavior(nwb, h5),
            "pupil_center": self._pupil_center(nwb, h5),
        }
        self._finish()

    # -- pieces ---------------------------------------------------------------------------------

    def _stimulus(self, nwb: Any, h5: _H5) -> tuple[FrameStore, np.ndarray]:
        from pynwb.image import ImageSeries

        found = {
            name: obj
            for container in (nwb.acquisition, nwb.stimulus)
            for name, obj in container.items()
            if isinstance(obj, ImageSeries) and type(obj).__name__ == "ImageSeries"
        }
        if not found:
            raise DataFormatError(
                self.path, "no ImageSeries of stimulus frames in /acquisition or /stimulus"
            )
        series = _find(found, "stimulus", "video", "movie") if len(found) > 1 else None
        series = series or next(iter(found.values()))
        what = f"ImageSeries '{series.name}'"
        if series.data is None or not hasattr(series.data, "shape") or len(series.data.shape) < 3:
            raise DataFormatError(
                self.path,
                f"{what}: frames are not stored in the file (external_file "
                f"{list(series.external_file or [])}); cortexfm reads in-file frames only",
            )
        times = _times(series, self.path, what)
        if np.any(np.diff(times) <= 0):
            raise DataFormatError(self.path, f"{what}: timestamps must increase")
        return _NwbFrames(h5, series, self.path, what), times

    def _trials(self, nwb: Any, frame_times: np.ndarray) -> list[TimedTrial]:
        tables = dict(nwb.intervals.items()) if nwb.intervals is not None else {}
        rows = []
        for name, table in tables.items():
            cols = set(table.colnames)
            key = (
                "condition_hash"
                if "condition_hash" in cols
                else ("movie_name" if "movie_name" in cols else None)
            )
            if key is None:
                continue
            start = np.asarray(table["start_time"].data[:], dtype=np.float64)
            stop = np.asarray(table["stop_time"].data[:], dtype=np.float64)
            ids = [str(v) for v in table[key].data[:]]
            types = (
                [str(v) for v in table["stimulus_type"].data[:]]
                if "stimulus_type" in cols
                else [name] * len(ids)
            )
            for i in range(len(ids)):
                natural = bool(NATURAL.search(name) or NATURAL.search(types[i]))
                rows.append((start[i], stop[i], ids[i], types[i], natural, f"{name}[{i}]"))
        if not rows:
            raise DataFormatError(
                self.path,
                "no trial table in /intervals with start_time, stop_time and "
                "condition_hash (or movie_name)",
            )
        rows.sort(key=lambda r: r[0])
        tiers = repeat_tiers([r[2] for r in rows], [r[4] for r in rows])
        trials = []
        for (start, stop, video_id, kind, _, where), tier in zip(rows, tiers, strict=True):
            first, last = np.searchsorted(frame_times, [start - 0.01, stop - 0.01])
            if last <= first:
                raise DataFormatError(
                    self.path,
                    f"/intervals/{where}: no stimulus frame between {start:.3f} s "
                    f"and {stop:.3f} s (a truncated stimulus?)",
                )
            trials.append(
                TimedTrial(
                    np.arange(first, last),
                    frame_times[first:last],
                    float(start),
                    float(stop),
                    tier,
                    video_id,
                    kind,
                )
            )
        return trials

    def _responses(self, nwb: Any, h5: _H5) -> list[TimedSignal]:
        ophys = nwb.processing.get("ophys") if nwb.processing else None
        if ophys is None:
            raise DataFormatError(self.path, "no /processing/ophys module (two-photon traces)")
        interfaces = dict(ophys.data_interfaces.items())
        container = _find(interfaces, "deconv") or interfaces.get("Fluorescence")
        if container is None or not hasattr(container, "roi_response_series"):
            raise DataFormatError(
                self.path, "/processing/ophys: no Deconvolved or Fluorescence traces"
            )
        self.info["responses_from"] = f"/processing/ophys/{container.name}"
        signals, unit_ids, coords = [], [], []
        for name in sorted(container.roi_response_series, key=natural_key):
            series = container.roi_response_series[name]
            what = f"/processing/ophys/{container.name}/{name}"
            signals.append(_signal(h5, series, self.path, what))
            rows = np.asarray(series.rois.data[:], dtype=np.int64)
            table = series.rois.table
            if signals[-1].n_columns != len(rows):
                raise DataFormatError(
                    self.path, f"{what}: {signals[-1].n_columns} traces but {len(rows)} rois"
                )
            ids = (
                np.asarray(table["unit_id"].data[:])
                if "unit_id" in table.colnames
                else np.asarray(table.id.data[:])
            )
            unit_ids.append(ids[rows])
            coords.append(self._positions(table, h5)[rows])
        self.unit_ids = np.concatenate(unit_ids)
        if len(np.unique(self.unit_ids)) != len(self.unit_ids):
            raise DataFormatError(
                self.path,
                f"{self.info['responses_from']}: unit ids repeat across imaging "
                "fields; add a unique unit_id column to each plane segmentation",
            )
        self.coordinates = np.concatenate(coords).astype(np.float64)
        self.neuron_extensions = {}
        return signals

    def _positions(self, table: Any, h5: _H5) -> np.ndarray:
        """``[rois, 3]`` positions in µm (NaN when the file has none)."""
        n = len(table.id.data)
        if {"x", "y", "z"} <= set(table.colnames):
            return np.stack([np.asarray(table[c].data[:], float) for c in "xyz"], axis=1)
        if "image_mask" not in table.colnames:
            return np.full((n, 3), np.nan)
        cache = session_cache_dir(self.path) / f"centroids-{table.name}.npy"
        try:
            centroids = load_small(cache)
            if centroids.shape != (n, 2):
                raise DataFormatError(cache, "stale")
        except DataFormatError:  # absent, broken or stale: recomputed
            centroids = _mask_centroids(h5(table["image_mask"].data.name), n)
            with contextlib.suppress(OSError):  # an unwritable cache only costs time
                save_npy_atomic(cache, centroids)
        plane = table.imaging_plane
        spacing = getattr(plane, "grid_spacing", None)
        origin = getattr(plane, "origin_coords", None)
        xy = centroids.copy()
        if spacing is not None:
            xy *= np.asarray(spacing, float)[:2] * _to_um(plane, "grid_spacing_unit")
        z = np.full((n, 1), np.nan)
        if origin is not None:
            origin = np.asarray(origin, float) * _to_um(plane, "origin_coords_unit")
            xy += origin[:2]
            if len(origin) > 2:
                z[:] = origin[2]
        return np.concatenate([xy, z], axis=1)

    def _behavior(self, nwb: Any, h5: _H5) -> list[TimedSignal]:
        acq = dict(nwb.acquisition.items())
        pupil = acq.get("PupilTracking")
        if pupil is None or not pupil.time_series:
            raise DataFormatError(self.path, "no /acquisition/PupilTracking (pupil radius)")
        series = _find(dict(pupil.time_series.items()), "major", "radius", "")
        treadmill = _find(acq, "treadmill", "running", "wheel")
        if treadmill is None or not hasattr(treadmill, "data"):
            raise DataFormatError(self.path, "no /acquisition/treadmill_velocity")
        return [
            _signal(h5, series, self.path, f"/acquisition/PupilTracking/{series.name}", [0]),
            _signal(h5, treadmill, self.path, f"/acquisition/{treadmill.name}", [0]),
        ]

    def _pupil_center(self, nwb: Any, h5: _H5) -> list[TimedSignal]:
        eye = dict(nwb.acquisition.items()).get("EyeTracking")
        if eye is None or not eye.spatial_series:
            raise DataFormatError(self.path, "no /acquisition/EyeTracking (pupil position)")
        series = _find(dict(eye.spatial_series.items()), "position", "")
        return [_signal(h5, series, self.path, f"/acquisition/EyeTracking/{series.name}", [0, 1])]
