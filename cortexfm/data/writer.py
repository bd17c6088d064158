"""Writing a session as a Sensorium 2023 dynamic tree (with cortexfm's extensions).

Trials are streamed to disk one by one (memory stays bounded), into a temporary folder next to
the destination that is renamed into place on success: a crash never leaves a half-written
session behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

import numpy as np

from cortexfm.atomic import save_npy_atomic
from cortexfm.data import schema
from cortexfm.data.session import MODALITIES, Session

_FOLDERS = {
    "video": "videos",
    "responses": "responses",
    "behavior": "behavior",
    "pupil_center": "pupil_center",
}


class SessionWriter:
    """Stream trials into a new session tree.

    >>> with SessionWriter(path, session_id="m1-s1", mouse_id="m1", unit_ids=ids,
    ...                    coordinates=xyz) as writer:
    ...     writer.add_trial(video=v, responses=r, behavior=b, pupil_center=p, tier="train")

    Arrays given to :meth:`add_trial` are time first (``video [time, height, width]``,
    ``responses [time, neurons]``, ``behavior [time, 2]``, ``pupil_center [time, 2]``) and are
    stored in the Sensorium layout (time last) with their dtypes unchanged. ``pad_to`` NaN-pads
    short trials at the end, as the published data are.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        session_id: str,
        mouse_id: str | None = None,
        unit_ids: np.ndarray,
        coordinates: np.ndarray,
        frame_rate: float = schema.DEFAULT_FRAME_RATE,
        neuron_extensions: dict[str, np.ndarray] | None = None,
        overwrite: bool = False,
        extra_info: dict | None = None,
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(
                f"{self.path}: already exists (pass overwrite=True to replace it)"
            )
        unit_ids = np.asarray(unit_ids)
        coordinates = np.asarray(coordinates)
        n = len(unit_ids)
        if coordinates.shape != (n, 3):
            raise ValueError(f"coordinates shape {coordinates.shape}, expected ({n}, 3)")
        self.n_neurons = n
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(
            tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        )
        self._info = {
            "session_id": str(session_id),
            "mouse_id": str(mouse_id if mouse_id is not None else session_id),
            "frame_rate": float(frame_rate),
            "frame_size": None,
            "schema_version": schema.SCHEMA_VERSION,
            **(extra_info or {}),
        }
        self.overwrite = overwrite
        self._tiers: list[str] = []
        self._trial_ext: dict[str, list] = {"stimulus_type": [], "video_id": [], "repeat": []}
        for folder in _FOLDERS.values():
            (self._tmp / "data" / folder).mkdir(parents=True)
        meta = self._tmp / "meta" / "neurons"
        save_npy_atomic(meta / "unit_ids.npy", unit_ids)
        save_npy_atomic(meta / "cell_motor_coordinates.npy", coordinates)
        for name, values in (neuron_extensions or {}).items():
            if name not in schema.NEURON_EXTENSIONS:
                raise ValueError(
                    f"unknown neuron extension {name!r}; known: {schema.NEURON_EXTENSIONS}"
                )
            values = np.asarray(values).astype(str)
            if values.shape != (n,):
                raise ValueError(
                    f"neuron extension {name!r} has shape {values.shape}, expected ({n},)"
                )
            save_npy_atomic(meta / f"{name}.npy", values)

    @property
    def n_trials(self) -> int:
        return len(self._tiers)

    def add_trial(
        self,
        *,
        video: np.ndarray,
        responses: np.ndarray,
        behavior: np.ndarray,
        pupil_center: np.ndarray,
        tier: str,
        stimulus_type: str = "unknown",
        video_id: str | None = None,
        repeat: int | None = None,
        pad_to: int | None = None,
    ) -> int:
        """Write one trial; returns its trial id. ``repeat`` defaults to the clip's earlier showings."""
        if tier not in schema.KNOWN_TIERS:
            raise ValueError(f"unknown tier {tier!r}; known: {sorted(schema.KNOWN_TIERS)}")
        arrays = {
            "video": video,
            "responses": responses,
            "behavior": behavior,
            "pupil_center": pupil_center,
        }
        t = video.shape[0]
        for name, a in arrays.items():
            if a.shape[0] != t:
                raise ValueError(f"{name} has {a.shape[0]} frames, video has {t}")
        if video.ndim != 3:
            raise ValueError(f"video shape {video.shape}, expected [time, height, width]")
        if responses.shape != (t, self.n_neurons):
            raise ValueError(f"responses shape {responses.shape}, expected ({t}, {self.n_neurons})")
        for name in ("behavior", "pupil_center"):
            if arrays[name].shape != (t, 2):
                raise ValueError(f"{name} shape {arrays[name].shape}, expected ({t}, 2)")
        size = list(video.shape[1:])
        if self._info["frame_size"] is None:
            self._info["frame_size"] = size
        elif self._info["frame_size"] != size:
            raise ValueError(
                f"frame size {size} differs from earlier trials {self._info['frame_size']}"
            )
        trial_id = self.n_trials
        for name, a in arrays.items():
            stored = np.moveaxis(a, 0, -1)  # time last, as published
            if pad_to is not None and pad_to > t:
                if not np.issubdtype(stored.dtype, np.floating):
                    stored = stored.astype(np.float32)
                pad = np.full((*stored.shape[:-1], pad_to - t), np.nan, dtype=stored.dtype)
                stored = np.concatenate([stored, pad], axis=-1)
            np.save(
                self._tmp / "data" / _FOLDERS[name] / f"{trial_id}.npy",
                np.ascontiguousarray(stored),
            )
        self._tiers.append(tier)
        self._trial_ext["stimulus_type"].append(stimulus_type)
        clip = str(video_id) if video_id is not None else f"t{trial_id}"
        if repeat is None:  # count earlier showings of the same clip
            repeat = self._trial_ext["video_id"].count(clip)
        self._trial_ext["video_id"].append(clip)
        self._trial_ext["repeat"].append(int(repeat))
        return trial_id

    def write_statistics(self, values: dict[str, dict[str, np.ndarray]]) -> None:
        """Store statistics under ``meta/statistics/<key>/all/<stat>.npy``."""
        for modality, stats in values.items():
            for stat, v in stats.items():
                save_npy_atomic(
                    self._tmp / "meta" / "statistics" / _FOLDERS[modality] / "all" / f"{stat}.npy",
                    np.asarray(v),
                )

    def meta_dir(self, name: str) -> Path:
        """A new folder ``meta/<name>`` inside the pending tree, for extra files (ground truth)."""
        path = self._tmp / "meta" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def close(self) -> Path:
        """Write the trial metadata and move the tree into place."""
        trials = self._tmp / "meta" / "trials"
        save_npy_atomic(trials / "tiers.npy", np.array(self._tiers, dtype=str))
        save_npy_atomic(
            trials / "stimulus_type.npy", np.array(self._trial_ext["stimulus_type"], dtype=str)
        )
        save_npy_atomic(trials / "video_id.npy", np.array(self._trial_ext["video_id"], dtype=str))
        save_npy_atomic(trials / "repeat.npy", np.array(self._trial_ext["repeat"], dtype=np.int64))
        (self._tmp / "meta" / "session.json").write_text(json.dumps(self._info, indent=2))
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old")
            self.path.rename(old)
            self._tmp.rename(self.path)
            shutil.rmtree(old)
        else:
            self._tmp.rename(self.path)
        return self.path

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def copy_session(session: Session, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``session`` (any layout) as a cortexfm/Sensorium 2023 tree at ``path``."""
    ext = {k: v for k, v in session.neuron_extensions.items()}
    writer = SessionWriter(
        path,
        session_id=session.session_id,
        mouse_id=session.mouse_id,
        unit_ids=session.unit_ids,
        coordinates=session.coordinates,
        frame_rate=session.frame_rate,
        neuron_extensions=ext,
        overwrite=overwrite,
    )
    with writer:
        for trial_id in range(session.n_trials):
            arrays = {m: session.read(trial_id, m) for m in MODALITIES}
            writer.add_trial(
                **arrays,
                tier=str(session.tiers[trial_id]),
                stimulus_type=str(session.stimulus_types[trial_id]),
                video_id=str(session.video_ids[trial_id]),
                repeat=int(session.repeats[trial_id]),
            )
    return Path(path)
