"""Small synthetic session trees (random arrays in the real layout) for tests and benchmarks.

The responses here carry no meaning; the ground-truth simulator lives in :mod:`cortexfm.sim`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cortexfm.data.writer import SessionWriter


def write_synthetic_session(
    path: str | Path,
    *,
    n_neurons: int = 50,
    tiers: Sequence[str] = ("train",) * 6 + ("oracle",) * 4,
    trial_lengths: Sequence[int] | int = 90,
    array_length: int | None = None,
    frame_size: tuple[int, int] = (36, 64),
    coordinates: np.ndarray | None = None,
    session_id: str | None = None,
    mouse_id: str | None = None,
    video_ids: Sequence[str] | None = None,
    seed: int = 0,
    overwrite: bool = False,
    hidden_tiers_zero: bool = True,
) -> Path:
    """Write a tree with random videos (0-255), gamma responses and smooth behaviour.

    ``trial_lengths`` are valid frames per trial; with ``array_length`` every array is
    NaN-padded to that many frames, as in the published data. Trials of hidden test tiers get
    zero-filled responses, as in the public release.
    """
    rng = np.random.default_rng(seed)
    n_trials = len(tiers)
    lengths = [trial_lengths] * n_trials if isinstance(trial_lengths, int) else list(trial_lengths)
    if coordinates is None:
        coordinates = rng.uniform([-500, -500, 100], [500, 500, 400], size=(n_neurons, 3)).round()
    hidden = {"live_test_main", "live_test_bonus", "final_test_main", "final_test_bonus"}
    writer = SessionWriter(
        path,
        session_id=session_id or Path(path).name,
        mouse_id=mouse_id,
        unit_ids=np.arange(1, n_neurons + 1),
        coordinates=coordinates,
        overwrite=overwrite,
    )
    clips: dict[str, np.ndarray] = {}  # repeats of a clip show the same frames
    with writer:
        for i, (tier, t) in enumerate(zip(tiers, lengths, strict=True)):
            clip = None if video_ids is None else str(video_ids[i])
            video = clips.get(clip) if clip is not None else None
            if video is None or video.shape[0] != t:
                video = rng.uniform(0, 255, size=(t, *frame_size)).round().astype(np.float32)
                if clip is not None:
                    clips[clip] = video
            responses = rng.gamma(0.5, 2.0, size=(t, n_neurons)).astype(np.float32)
            if hidden_tiers_zero and tier in hidden:
                responses[:] = 0
            run = np.abs(np.cumsum(rng.normal(size=t))).astype(np.float32)
            pupil = (20 + 0.3 * run + rng.normal(size=t)).astype(np.float32)
            behavior = np.stack([pupil, run], axis=1)
            pupil_center = (rng.normal(size=(t, 2)).cumsum(0) * 0.2 + 120).astype(np.float32)
            writer.add_trial(
                video=video,
                responses=responses,
                behavior=behavior,
                pupil_center=pupil_center,
                tier=tier,
                video_id=None if video_ids is None else video_ids[i],
                pad_to=array_length,
            )
    return Path(path)
