"""The cajal/fnn data layout, read in place as a session, so fnn users bring their data unchanged.

::

    <root>/
      training_data[_<suffix>]/
        training/<trial>.npy      () or (1,) bool   True: training trial, False: validation
        samples/<trial>.npy       () or (1,) int    number of frames
        stimuli/<trial>.npy       (T, H, W, 1) uint8, 0-255 (fnn uses 144 x 256)
        perspectives/<trial>.npy  (T, 2) float32   pupil x, y (fnn: z-scored; NaN = missing)
        modulations/<trial>.npy   (T, 2) float32   pupil radius, treadmill velocity
        units/<trial>.npy         (T, U) float32   responses
      evaluation_data[_<suffix>]/            (optional: repeated test clips)
        {stimuli,perspectives,modulations,units}/<video>/<repeat>.npy

``<root>`` may also be the ``training_data`` folder itself (its ``evaluation_data`` sibling
with the same suffix is then used). File names are arbitrary but must match across folders;
trials are ordered by a natural sort of their names.

Mapping to cortexfm: ``training`` -> tier ``train``/``validation``; evaluation trials -> tier
``oracle`` with the ``<video>`` folder as clip id; ``modulations`` -> ``behavior`` (same column
order: pupil, running); ``perspectives`` -> ``pupil_center``; ``units`` -> ``responses``.
Missing (NaN) eye and behaviour samples become 0, the mean of fnn's z-scored inputs.
Unit ids are 0..U-1 and cortical coordinates are unknown (NaN): the fnn layout has neither.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cortexfm.data.errors import DataFormatError
from cortexfm.data.npy import load_small, open_array, read_header
from cortexfm.data.session import Session

#: fnn folder of each cortexfm modality.
FOLDERS = {
    "video": "stimuli",
    "pupil_center": "perspectives",
    "behavior": "modulations",
    "responses": "units",
}
_TRAINING_ONLY = ("training", "samples")


def natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _looks_like_training_data(path: Path) -> bool:
    return all((path / f).is_dir() for f in ("training", "stimuli", "units"))


def find_fnn_folders(path: Path) -> tuple[Path, Path | None] | None:
    """``(training_data, evaluation_data or None)`` if ``path`` holds the fnn layout."""
    path = Path(path)
    if _looks_like_training_data(path):
        training = path
    else:
        found = sorted(p for p in path.glob("training_data*") if _looks_like_training_data(p))
        if len(found) != 1:
            return None
        training = found[0]
    evaluation = training.parent / training.name.replace("training_data", "evaluation_data", 1)
    if training.name == evaluation.name or not evaluation.is_dir():
        evaluation = None
    return training, evaluation


def is_fnn_folder(path: Path) -> bool:
    return Path(path).is_dir() and find_fnn_folders(path) is not None


class FnnSession(Session):
    """A cajal/fnn ``training_data`` (+ ``evaluation_data``) folder read as one session."""

    layout = "fnn"

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        folders = find_fnn_folders(self.path)
        if folders is None:
            raise DataFormatError(
                self.path,
                "not an fnn data folder: expected training_data/ with training/, samples/, "
                "stimuli/, perspectives/, modulations/ and units/",
            )
        self.training_dir, self.evaluation_dir = folders
        self._files: list[dict[str, Path]] = []
        tiers: list[str] = []
        video_ids: list[str] = []
        repeats: list[int] = []
        lengths: list[int] = []
        for name in self._training_names():
            files = {m: self.training_dir / f / f"{name}.npy" for m, f in FOLDERS.items()}
            flag_path = self.training_dir / "training" / f"{name}.npy"
            flag = load_small(flag_path).reshape(-1)
            if flag.size != 1 or flag.dtype.kind not in "biu":
                raise DataFormatError(
                    flag_path, f"expected one bool, got {flag.dtype} {flag.shape}"
                )
            samples_path = self.training_dir / "samples" / f"{name}.npy"
            samples = load_small(samples_path).reshape(-1)
            if samples.size != 1 or samples.dtype.kind not in "iu":
                raise DataFormatError(
                    samples_path, f"expected one integer, got {samples.dtype} {samples.shape}"
                )
            self._files.append(files)
            tiers.append("train" if bool(flag[0]) else "validation")
            video_ids.append(name)
            repeats.append(0)
            lengths.append(int(samples[0]))
        if self.evaluation_dir is not None:
            for video, repeat_names in self._evaluation_names():
                for r, name in enumerate(repeat_names):
                    self._files.append(
                        {
                            m: self._evaluation_folder(f) / video / f"{name}.npy"
                            for m, f in FOLDERS.items()
                        }
                    )
                    tiers.append("oracle")
                    video_ids.append(video)
                    repeats.append(r)
                    lengths.append(-1)
        self.tiers = np.array(tiers, dtype=object)
        self._video_ids = np.array(video_ids, dtype=object)
        self._repeats = np.array(repeats, dtype=np.int64)
        self._check_headers(lengths)
        self.neuron_extensions = {}
        self.coordinates = np.full((len(self.unit_ids), 3), np.nan)

    # -- discovery --------------------------------------------------------------------------

    def _training_names(self) -> list[str]:
        for folder in (*_TRAINING_ONLY, *FOLDERS.values()):
            if not (self.training_dir / folder).is_dir():
                raise DataFormatError(self.training_dir / folder, "folder is missing")
        names = sorted(
            (p.stem for p in (self.training_dir / "training").glob("*.npy")), key=natural_key
        )
        if not names:
            raise DataFormatError(self.training_dir / "training", "no .npy trial files")
        for folder in (*_TRAINING_ONLY, *FOLDERS.values()):
            present = {p.stem for p in (self.training_dir / folder).glob("*.npy")}
            missing = [n for n in names if n not in present]
            if missing:
                raise DataFormatError(
                    self.training_dir / folder / f"{missing[0]}.npy",
                    f"file is missing ({len(missing)} trial(s) of training/ have no file here)",
                )
            extra = sorted(present - set(names))
            if extra:
                raise DataFormatError(
                    self.training_dir / folder / f"{extra[0]}.npy",
                    f"no matching file in training/ ({len(extra)} such file(s))",
                )
        return names

    def _evaluation_folder(self, folder: str) -> Path:
        assert self.evaluation_dir is not None
        path = self.evaluation_dir / folder
        if (
            folder == "perspectives"
            and not path.is_dir()
            and (self.evaluation_dir / "perpectives").is_dir()
        ):
            return self.evaluation_dir / "perpectives"  # a spelling found in fnn's own docs
        return path

    def _evaluation_names(self) -> list[tuple[str, list[str]]]:
        for folder in FOLDERS.values():
            if not self._evaluation_folder(folder).is_dir():
                raise DataFormatError(self._evaluation_folder(folder), "folder is missing")
        stimuli = self._evaluation_folder("stimuli")
        out = []
        for video_dir in sorted(
            (p for p in stimuli.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)
        ):
            names = sorted((p.stem for p in video_dir.glob("*.npy")), key=natural_key)
            for folder in FOLDERS.values():
                for name in names:
                    f = self._evaluation_folder(folder) / video_dir.name / f"{name}.npy"
                    if not f.exists():
                        raise DataFormatError(f, "file is missing (it exists under stimuli/)")
            out.append((video_dir.name, names))
        return out

    def _check_headers(self, lengths: list[int]) -> None:
        n_units = None
        frame_size = None
        self._lengths = np.zeros(len(self._files), dtype=np.int64)
        for i, files in enumerate(self._files):
            shapes = {}
            for modality, path in files.items():
                header = read_header(path)
                if header.dtype.kind not in "fiub":
                    raise DataFormatError(path, f"dtype {header.dtype} is not numeric")
                shapes[modality] = header.shape
            video = shapes["video"]
            if len(video) == 4 and video[-1] == 1:
                video = video[:3]
            if len(video) != 3:
                raise DataFormatError(
                    files["video"], f"shape {shapes['video']}, expected (frames, height, width, 1)"
                )
            if frame_size is None:
                frame_size = video[1:]
            elif video[1:] != frame_size:
                raise DataFormatError(
                    files["video"],
                    f"frame size {video[1:]} differs from {frame_size} of the first trial",
                )
            t = video[0]
            for modality in ("pupil_center", "behavior"):
                if shapes[modality] != (t, 2):
                    raise DataFormatError(
                        files[modality], f"shape {shapes[modality]}, expected ({t}, 2)"
                    )
            units = shapes["responses"]
            if len(units) != 2 or units[0] != t:
                raise DataFormatError(files["responses"], f"shape {units}, expected ({t}, units)")
            if n_units is None:
                n_units = units[1]
            elif units[1] != n_units:
                raise DataFormatError(
                    files["responses"], f"{units[1]} units, but the first trial has {n_units}"
                )
            if lengths[i] >= 0 and lengths[i] != t:
                name = files["video"].stem
                raise DataFormatError(
                    self.training_dir / "samples" / f"{name}.npy",
                    f"says {lengths[i]} frames but stimuli/{name}.npy has {t}",
                )
            self._lengths[i] = t
        self._frame_size = tuple(frame_size or (0, 0))
        self.unit_ids = np.arange(n_units or 0)

    # -- Session interface ------------------------------------------------------------------

    @property
    def session_id(self) -> str:
        if "session_id" in self.info:
            return str(self.info["session_id"])
        suffix = self.training_dir.name[len("training_data") :].lstrip("_-")
        return suffix or self.path.name

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._frame_size  # type: ignore[return-value]

    @property
    def video_ids(self) -> np.ndarray:  # type: ignore[override]
        return self._video_ids

    @property
    def repeats(self) -> np.ndarray:  # type: ignore[override]
        return self._repeats

    def _trial_length(self, trial_id: int) -> int:
        return int(self._lengths[trial_id])

    def _read(self, trial_id: int, modality: str, start: int, stop: int) -> np.ndarray:
        array = open_array(self._files[trial_id][modality])
        out = np.asarray(array[start:stop], dtype=np.float32)
        if modality == "video":
            out = out.reshape(out.shape[0], *self._frame_size)
        return np.ascontiguousarray(out)

    def _source(self, trial_id: int, modality: str) -> Path:
        return Path(self._files[trial_id][modality])
