"""Recognising repeated clips from the frames themselves, for trees without video ids.

The published Sensorium 2023 trees carry no clip ids, yet noise ceilings need to know which
trials showed the same clip. Each trial's video is reduced to a *signature*: block means on a
coarse grid (at most 9 x 16 blocks) for every valid frame. Two trials show the same clip when
their signatures agree within ``tolerance`` grey levels on every block of every frame they
share, and the shorter one covers at least ``min_overlap`` of the longer one (a NaN tail cut
short by the acquisition does not make a new clip).

Comparing numbers within a tolerance, rather than hashing rounded values, is what makes the
match robust: a value near a rounding boundary cannot fall on different sides for two
repeats. The dtype does not matter (uint8 and float32 frames of one clip give one signature).
"""

from __future__ import annotations

import hashlib

import numpy as np

#: Frames used for the coarse sort key (a necessary condition for two signatures to match).
_KEY_FRAMES = 10


def clip_signature(video: np.ndarray, grid: tuple[int, int] = (9, 16)) -> np.ndarray:
    """Block means of each valid frame: ``[time, H, W]`` -> ``[time, gh, gw]`` float32.

    Frames after the first NaN frame (a NaN tail) are dropped.
    """
    if video.ndim != 3:
        raise ValueError(f"video must be [time, height, width], got shape {video.shape}")
    frames = np.asarray(video, dtype=np.float32)
    finite = np.isfinite(frames.reshape(frames.shape[0], -1)).all(axis=1)
    valid = int(np.argmin(finite)) if not finite.all() else frames.shape[0]
    frames = frames[:valid]
    t, h, w = frames.shape
    gh, gw = min(grid[0], h), min(grid[1], w)
    bh, bw = h // gh, w // gw
    frames = frames[:, : gh * bh, : gw * bw].reshape(t, gh, bh, gw, bw)
    return frames.mean(axis=(2, 4), dtype=np.float64).astype(np.float32)


def same_clip(
    a: np.ndarray, b: np.ndarray, tolerance: float = 2.0, min_overlap: float = 0.9
) -> bool:
    """True when two signatures show one clip (see the module docstring)."""
    if a.shape[1:] != b.shape[1:]:
        return False
    shorter, longer = sorted((a.shape[0], b.shape[0]))
    if longer == 0 or shorter < min_overlap * longer:
        return False
    return bool(np.max(np.abs(a[:shorter] - b[:shorter]), initial=0.0) <= tolerance)


def group_clips(
    signatures: list[np.ndarray], tolerance: float = 2.0, min_overlap: float = 0.9
) -> np.ndarray:
    """Label each signature with the index of the first signature showing the same clip.

    Candidates are found through a sort on the mean of the first frames (two signatures of one
    clip differ there by at most ``tolerance``), so the cost is close to linear in trials.
    """
    n = len(signatures)
    keys = np.array([float(s[:_KEY_FRAMES].mean()) if s.shape[0] else np.nan for s in signatures])
    order = np.argsort(np.nan_to_num(keys, nan=np.inf), kind="stable")
    labels = np.arange(n)
    for pos, i in enumerate(order):
        if not np.isfinite(keys[i]):
            continue
        for j in order[pos + 1 :]:
            if not keys[j] - keys[i] <= tolerance:
                break
            if labels[j] == j and same_clip(signatures[i], signatures[j], tolerance, min_overlap):
                labels[j] = labels[i]
    # resolve chains so every member points at its group's first trial
    for i in range(n):
        root = i
        while labels[root] != root:
            root = labels[root]
        labels[i] = root
    out = labels.copy()
    for root in np.unique(labels):
        members = np.flatnonzero(labels == root)
        out[members] = members.min()
    return out


def clip_ids(signatures: list[np.ndarray], tolerance: float = 2.0) -> np.ndarray:
    """A stable string id per trial (``c`` + hash of its group's first signature)."""
    groups = group_clips(signatures, tolerance)
    ids = {}
    for g in np.unique(groups):
        code = np.round(signatures[g][:_KEY_FRAMES] / 4.0).astype(np.int16)
        digest = hashlib.sha1(code.tobytes() + str(signatures[g].shape).encode()).hexdigest()
        ids[g] = f"c{digest[:16]}"
    return np.array([ids[g] for g in groups], dtype=object)
