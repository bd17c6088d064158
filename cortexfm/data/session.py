"""One recording session read in place from its file tree, lazily.

Opening a session reads only metadata and ``.npy`` headers (which catches malformed trees
early); trial arrays are memory-mapped when a trial or window is requested. Arrays come back
time-first, the convention of the whole package:

- ``video``        ``[time, height, width]`` float32 (grayscale, raw units, 0-255)
- ``responses``    ``[time, neurons]`` float32
- ``behavior``     ``[time, 2]`` float32 = [pupil dilation, running speed]
- ``pupil_center`` ``[time, 2]`` float32 = (x, y)

Non-finite values (:mod:`cortexfm.data.gaps`): trailing NaN padding ends a trial; NaN gaps
inside a trial are filled in the inputs and kept (as NaN) in the responses; Inf is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cortexfm.data import schema
from cortexfm.data.cache import session_cache_dir, write_cache_text
from cortexfm.data.clips import clip_ids, clip_signature
from cortexfm.data.errors import DataFormatError
from cortexfm.data.gaps import INPUT_MODALITIES, check_no_inf, fill_input_gaps, valid_length
from cortexfm.data.npy import load_small, open_array, read_header

if TYPE_CHECKING:  # pandas loads with the first table asked for (cortexfm predict needs none)
    import pandas as pd


@dataclass
class Trial:
    """One trial's arrays (valid frames only, time first) and its labels."""

    trial_id: int
    tier: str
    video_id: str
    repeat: int
    stimulus_type: str
    has_ground_truth: bool
    video: np.ndarray  # [time, height, width]
    responses: np.ndarray  # [time, neurons]
    behavior: np.ndarray  # [time, 2]
    pupil_center: np.ndarray  # [time, 2]

    @property
    def n_frames(self) -> int:
        return int(self.video.shape[0])


def _strings(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype.kind not in "USOifu":
        raise DataFormatError(path, f"expected strings or integers, got dtype {array.dtype}")
    return np.array([str(v) for v in array.reshape(-1)], dtype=object)


def _is_numeric(dtype: np.dtype) -> bool:
    return dtype.kind in "fiu"


class Session:
    """Base class of a session; subclasses read one on-disk layout."""

    layout: str = "?"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataFormatError(self.path, "session folder does not exist")
        self.info: dict = self._read_session_json()

    # -- metadata ---------------------------------------------------------------------------

    def _read_session_json(self) -> dict:
        path = self.path / "meta" / "session.json"
        if not path.exists():
            return {}
        try:
            info = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataFormatError(path, f"not valid JSON ({err})") from None
        if not isinstance(info, dict):
            raise DataFormatError(path, "must hold a JSON object")
        return info

    @property
    def session_id(self) -> str:
        """From ``meta/session.json``; the folder name only when no metadata exists."""
        return str(self.info.get("session_id", self.path.name))

    @property
    def mouse_id(self) -> str:
        return str(self.info.get("mouse_id", self.session_id))

    @property
    def frame_rate(self) -> float:
        return float(self.info.get("frame_rate", schema.DEFAULT_FRAME_RATE))

    @property
    def n_neurons(self) -> int:
        return len(self.unit_ids)

    @property
    def n_trials(self) -> int:
        return len(self.tiers)

    @property
    def frame_size(self) -> tuple[int, int]:
        raise NotImplementedError

    unit_ids: np.ndarray
    tiers: np.ndarray

    @cached_property
    def neurons(self) -> pd.DataFrame:
        """One row per neuron: ``unit_id``, cortical ``x, y, z`` (µm) and any extensions."""
        import pandas as pd

        table = pd.DataFrame({"unit_id": self.unit_ids})
        coords = self.coordinates
        table["x"], table["y"], table["z"] = coords[:, 0], coords[:, 1], coords[:, 2]
        for name, values in self.neuron_extensions.items():
            table[name] = values
        return table

    coordinates: np.ndarray
    neuron_extensions: dict[str, np.ndarray]

    @cached_property
    def trials(self) -> pd.DataFrame:
        """One row per trial: id, tier, valid frame count, clip id, repeat, stimulus type."""
        import pandas as pd

        return pd.DataFrame(
            {
                "trial_id": np.arange(self.n_trials),
                "tier": self.tiers,
                "n_frames": self.trial_lengths,
                "video_id": self.video_ids,
                "repeat": self.repeats,
                "stimulus_type": self.stimulus_types,
            }
        )

    def trials_in(self, *tiers: str) -> np.ndarray:
        """Ids of the trials in any of ``tiers``."""
        unknown = set(tiers) - schema.KNOWN_TIERS
        if unknown:
            raise ValueError(
                f"unknown tier(s) {sorted(unknown)}; known: {sorted(schema.KNOWN_TIERS)}"
            )
        return np.flatnonzero(np.isin(self.tiers, list(tiers)))

    @cached_property
    def trial_lengths(self) -> np.ndarray:
        """Valid frames per trial (first NaN frame); reads only a few bytes per file."""
        return np.array([self._trial_length(i) for i in range(self.n_trials)], dtype=np.int64)

    @cached_property
    def video_ids(self) -> np.ndarray:
        """Clip id per trial: from ``meta/trials/video_id.npy``, else recognised from the frames.

        Recognised ids (see :mod:`cortexfm.data.clips`) are cached in the cache directory.
        """
        given = self._trial_extension("video_id")
        if given is not None:
            return given
        return self._content_ids()

    def _content_ids(self) -> np.ndarray:
        cache = session_cache_dir(self.path) / "video_ids.json"
        if cache.exists():
            try:
                ids = json.loads(cache.read_text())
                if isinstance(ids, list) and len(ids) == self.n_trials:
                    return np.array(ids, dtype=object)
            except (OSError, ValueError):
                pass  # a broken cache file is recomputed
        signatures = [clip_signature(self._read_video_valid(i)) for i in range(self.n_trials)]
        ids = clip_ids(signatures)
        write_cache_text(cache, json.dumps([str(i) for i in ids]))
        return ids

    def _read_video_valid(self, trial_id: int) -> np.ndarray:
        """The video up to its own first NaN frame (other modalities' NaN tails ignored)."""
        return self.read(trial_id, "video", 0, self._video_length(trial_id))

    def _video_length(self, trial_id: int) -> int:
        return int(self.trial_lengths[trial_id])

    @cached_property
    def repeats(self) -> np.ndarray:
        """Repeat index of each trial's clip (0 for its first showing)."""
        given = self._trial_extension("repeat")
        if given is not None:
            return given.astype(np.int64)
        seen: dict[str, int] = {}
        out = np.zeros(self.n_trials, dtype=np.int64)
        for i, vid in enumerate(self.video_ids):
            out[i] = seen.get(vid, 0)
            seen[vid] = out[i] + 1
        return out

    @cached_property
    def stimulus_types(self) -> np.ndarray:
        given = self._trial_extension("stimulus_type")
        if given is not None:
            return given
        return np.array(["unknown"] * self.n_trials, dtype=object)

    def _trial_extension(self, name: str) -> np.ndarray | None:
        path = self.path / "meta" / "trials" / f"{name}.npy"
        if not path.exists():
            return None
        values = load_small(path)
        if values.shape != (self.n_trials,):
            raise DataFormatError(
                path, f"shape {values.shape}, expected ({self.n_trials},) = one per trial"
            )
        return values.astype(np.int64) if name == "repeat" else _strings(values, path)

    # -- arrays -------------------------------------------------------------------------------

    def _trial_length(self, trial_id: int) -> int:
        raise NotImplementedError

    def read(
        self, trial_id: int, modality: str, start: int = 0, stop: int | None = None
    ) -> np.ndarray:
        """Frames ``start:stop`` of one modality, time first, float32.

        ``modality`` is ``video``, ``responses``, ``behavior`` or ``pupil_center``.
        ``stop`` defaults to the trial's valid length.
        """
        self._check_trial(trial_id)
        if stop is None:
            stop = int(self.trial_lengths[trial_id])
        return self._read_clean(trial_id, modality, start, stop)

    def _read_clean(self, trial_id: int, modality: str, start: int, stop: int) -> np.ndarray:
        """:meth:`_read` with Inf refused and input gaps filled over the whole trial."""
        out = self._read(trial_id, modality, start, stop)
        if np.isfinite(out).all():
            return out
        path = self._source(trial_id, modality)
        check_no_inf(out, path, modality)
        if modality not in INPUT_MODALITIES:
            return out  # response gaps stay NaN (masked downstream)
        whole = self._read(trial_id, modality, 0, int(self.trial_lengths[trial_id]))
        check_no_inf(whole, path, modality)
        return fill_input_gaps(whole, modality, path)[start:stop]

    def _source(self, trial_id: int, modality: str) -> Path:
        """The file (or folder) that holds one trial's ``modality``, for error messages."""
        return self.path

    def _read(self, trial_id: int, modality: str, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError

    def _check_trial(self, trial_id: int) -> None:
        if not 0 <= int(trial_id) < self.n_trials:
            raise IndexError(f"{self.path}: trial {trial_id} out of range 0..{self.n_trials - 1}")

    def window(self, trial_id: int, start: int, length: int) -> dict[str, np.ndarray]:
        """``length`` frames of every modality from ``start``; time first."""
        stop = start + length
        if start < 0 or stop > self.trial_lengths[trial_id]:
            raise IndexError(
                f"{self.path}: window {start}:{stop} outside trial {trial_id} "
                f"of {self.trial_lengths[trial_id]} frames"
            )
        return {m: self._read_clean(trial_id, m, start, stop) for m in MODALITIES}

    def has_ground_truth(self, trial_id: int) -> bool:
        """False for withheld test responses (zero-filled or all-NaN in the public release)."""
        return bool(self._ground_truth[trial_id])

    @cached_property
    def _ground_truth(self) -> np.ndarray:
        flags = np.ones(self.n_trials, dtype=bool)
        for i in range(self.n_trials):
            if self.tiers[i] != schema.TRAIN_TIER:
                r = self.read(i, "responses")
                flags[i] = bool(r.size) and bool(np.any(np.nan_to_num(r) != 0))
        return flags

    def trial(self, trial_id: int) -> Trial:
        """All valid frames of one trial."""
        self._check_trial(trial_id)
        return Trial(
            trial_id=int(trial_id),
            tier=str(self.tiers[trial_id]),
            video_id=str(self.video_ids[trial_id]),
            repeat=int(self.repeats[trial_id]),
            stimulus_type=str(self.stimulus_types[trial_id]),
            has_ground_truth=self.has_ground_truth(trial_id),
            **{m: self.read(trial_id, m) for m in MODALITIES},
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(session_id={self.session_id!r}, neurons={self.n_neurons}, "
            f"trials={self.n_trials}, path='{self.path}')"
        )


MODALITIES = ("video", "responses", "behavior", "pupil_center")


def _read_neuron_meta(session: Session) -> None:
    meta = session.path / "meta" / "neurons"
    if not meta.is_dir():
        raise DataFormatError(meta, "folder is missing")
    ids_path = meta / "unit_ids.npy"
    session.unit_ids = load_small(ids_path).reshape(-1)
    n = len(session.unit_ids)
    coord_path = meta / "cell_motor_coordinates.npy"
    if coord_path.exists():
        coords = load_small(coord_path)
        if coords.shape != (n, 3):
            raise DataFormatError(
                coord_path, f"shape {coords.shape}, expected ({n}, 3) to match unit_ids.npy"
            )
        if not _is_numeric(coords.dtype):
            raise DataFormatError(coord_path, f"dtype {coords.dtype} is not numeric")
        session.coordinates = coords.astype(np.float64)
    else:
        session.coordinates = np.full((n, 3), np.nan)
    session.neuron_extensions = {}
    for name in schema.NEURON_EXTENSIONS:
        path = meta / f"{name}.npy"
        if path.exists():
            values = load_small(path)
            if values.shape != (n,):
                raise DataFormatError(
                    path, f"shape {values.shape}, expected ({n},) = one per neuron"
                )
            session.neuron_extensions[name] = _strings(values, path)


def _read_tiers(session: Session) -> None:
    path = session.path / "meta" / "trials" / "tiers.npy"
    tiers = _strings(load_small(path), path)
    unknown = sorted(set(tiers) - schema.KNOWN_TIERS)
    if unknown:
        raise DataFormatError(
            path, f"unknown tier(s) {unknown}; known: {sorted(schema.KNOWN_TIERS)}"
        )
    session.tiers = tiers


class DynamicSession(Session):
    """The Sensorium 2023 dynamic tree (videos at 30 Hz)."""

    layout = "sensorium2023"
    _folders = {
        "video": "videos",
        "responses": "responses",
        "behavior": "behavior",
        "pupil_center": "pupil_center",
    }

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        for problem in self.folder_problems(self.path):
            raise problem
        _read_neuron_meta(self)
        _read_tiers(self)
        self._frame_size: tuple[int, int] = (0, 0)
        for problem in self.trial_problems():
            raise problem

    @classmethod
    def folder_problems(cls, path: Path) -> Iterator[DataFormatError]:
        for folder in (
            "data",
            *(f"data/{f}" for f in cls._folders.values()),
            "meta/neurons",
            "meta/trials",
        ):
            if not (path / folder).is_dir():
                yield DataFormatError(path / folder, "folder is missing")

    def _file(self, modality: str, trial_id: int) -> Path:
        return self.path / "data" / self._folders[modality] / f"{trial_id}.npy"

    def _source(self, trial_id: int, modality: str) -> Path:
        return self._file(modality, trial_id)

    def trial_problems(self) -> Iterator[DataFormatError]:
        """Every disagreement among the trial files' headers (no array data is read)."""
        n = self.n_neurons
        for i in range(self.n_trials):
            t_of: dict[str, int] = {}
            for modality in MODALITIES:
                path = self._file(modality, i)
                try:
                    header = read_header(path)
                except DataFormatError as err:
                    yield err
                    continue
                if not _is_numeric(header.dtype):
                    yield DataFormatError(path, f"dtype {header.dtype} is not numeric")
                    continue
                shape = header.shape
                if modality == "video":
                    if len(shape) != 3:
                        yield DataFormatError(
                            path, f"video shape {shape}, expected (height, width, time)"
                        )
                        continue
                    if i == 0 or self._frame_size == (0, 0):
                        self._frame_size = (shape[0], shape[1])
                    elif shape[:2] != self._frame_size:
                        yield DataFormatError(
                            path,
                            f"frame size {shape[:2]} differs from {self._frame_size} of trial 0",
                        )
                elif modality == "responses":
                    if len(shape) != 2 or shape[0] != n:
                        yield DataFormatError(
                            path,
                            f"responses shape {shape}, expected ({n}, time): neuron count must match unit_ids.npy",
                        )
                        continue
                elif len(shape) != 2 or shape[0] != 2:
                    yield DataFormatError(path, f"{modality} shape {shape}, expected (2, time)")
                    continue
                t_of[modality] = shape[-1]
            if len(set(t_of.values())) > 1:
                yield DataFormatError(
                    self.path / "data",
                    f"trial {i}: different numbers of frames across modalities {t_of}",
                )
        for folder in self._folders.values():
            extra = {p.name for p in (self.path / "data" / folder).glob("*.npy")} - {
                f"{i}.npy" for i in range(self.n_trials)
            }
            if extra:
                yield DataFormatError(
                    self.path / "data" / folder,
                    f"{len(extra)} file(s) with no entry in meta/trials/tiers.npy, e.g. {sorted(extra)[0]}",
                )

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._frame_size

    def _trial_length(self, trial_id: int) -> int:
        length = self._video_length(trial_id)
        for modality in ("responses", "behavior", "pupil_center"):
            array = open_array(self._file(modality, trial_id))
            if array.shape[0]:
                length = min(length, valid_length(array[0]))
        return int(length)

    def _video_length(self, trial_id: int) -> int:
        video = open_array(self._file("video", trial_id))
        return valid_length(video[0, 0]) if video.size else 0

    def _read(self, trial_id: int, modality: str, start: int, stop: int) -> np.ndarray:
        array = open_array(self._file(modality, trial_id))
        if modality == "video":
            out = np.moveaxis(array[:, :, start:stop], -1, 0)
        else:
            out = array[:, start:stop].T
        return np.ascontiguousarray(out, dtype=np.float32)


class StaticSession(Session):
    """The Sensorium 2022 static tree; each image is presented as a clip of ``clip_frames``.

    The image, the response vector and the behaviour are repeated over the clip's frames.
    Sensorium 2022 behaviour is [pupil dilation, its derivative, running speed]; cortexfm keeps
    [pupil dilation, running speed].
    """

    layout = "sensorium2022"

    def __init__(self, path: str | Path, clip_frames: int = 30) -> None:
        super().__init__(path)
        if clip_frames < 1:
            raise ValueError(f"clip_frames must be >= 1, got {clip_frames}")
        self.clip_frames = clip_frames
        for folder in (
            "data/images",
            "data/responses",
            "data/behavior",
            "data/pupil_center",
            "meta/trials",
        ):
            if not (self.path / folder).is_dir():
                raise DataFormatError(self.path / folder, "folder is missing")
        _read_neuron_meta(self)
        _read_tiers(self)
        header = read_header(self.path / "data" / "images" / "0.npy")
        self._frame_size = tuple(header.shape[-2:])
        for i in range(self.n_trials):
            rpath = self.path / "data" / "responses" / f"{i}.npy"
            rh = read_header(rpath)
            if rh.shape != (self.n_neurons,):
                raise DataFormatError(
                    rpath, f"shape {rh.shape}, expected ({self.n_neurons},) to match unit_ids.npy"
                )
            ih = read_header(self.path / "data" / "images" / f"{i}.npy")
            if tuple(ih.shape[-2:]) != self._frame_size:
                raise DataFormatError(
                    self.path / "data" / "images" / f"{i}.npy",
                    f"image size {ih.shape} differs from trial 0",
                )

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._frame_size  # type: ignore[return-value]

    @cached_property
    def video_ids(self) -> np.ndarray:
        path = self.path / "meta" / "trials" / "frame_image_id.npy"
        if path.exists():
            return _strings(load_small(path), path)
        return super().video_ids

    @cached_property
    def stimulus_types(self) -> np.ndarray:
        given = self._trial_extension("stimulus_type")
        return given if given is not None else np.array(["image"] * self.n_trials, dtype=object)

    def _trial_length(self, trial_id: int) -> int:
        return self.clip_frames

    def _read(self, trial_id: int, modality: str, start: int, stop: int) -> np.ndarray:
        folder = "images" if modality == "video" else modality
        value = np.asarray(
            open_array(self.path / "data" / folder / f"{trial_id}.npy"), dtype=np.float32
        )
        if modality == "video":
            value = value.reshape(self._frame_size)
        elif modality == "behavior" and value.shape[0] == 3:
            value = value[[0, 2]]
        return np.ascontiguousarray(np.broadcast_to(value, (stop - start, *value.shape)))
