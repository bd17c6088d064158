"""Names and constants of the on-disk formats cortexfm reads and writes.

The native format is the Sensorium 2023 dynamic file tree, read in place::

    <session>/
      data/videos/<i>.npy        (H, W, T)  grayscale frames, NaN-padded at the end
      data/responses/<i>.npy     (N, T)     deconvolved activity
      data/behavior/<i>.npy      (2, T)     [pupil dilation, running speed]
      data/pupil_center/<i>.npy  (2, T)     pupil centre (x, y)
      meta/neurons/unit_ids.npy                (N,)
      meta/neurons/cell_motor_coordinates.npy  (N, 3) in µm
      meta/trials/tiers.npy                    (n_trials,) strings
      meta/statistics/<key>/all/{mean,std,min,max,median}.npy   (optional)

A trial ends at its trailing NaN padding (short trials are NaN-padded); NaN gaps inside a trial
and Inf are handled as :mod:`cortexfm.data.gaps` documents.

Optional cortexfm extensions (all under ``meta/``, all ``.npy`` without pickles):

- ``meta/neurons/{area,layer,cell_type}.npy``      (N,) strings
- ``meta/trials/{stimulus_type,video_id}.npy``     (n_trials,) strings
- ``meta/trials/repeat.npy``                        (n_trials,) int, repeat index of the clip
- ``meta/session.json``: ``{"session_id", "mouse_id", "frame_rate", "frame_size", "schema_version"}``

The Sensorium 2022 static tree (``data/images/<i>.npy`` (1, H, W), per-trial response vectors,
``meta/trials/frame_image_id.npy``) is read too; each image is presented as a clip.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

#: Tiers of the Sensorium 2023 release.
TIERS_2023 = (
    "train",
    "oracle",
    "live_test_main",
    "live_test_bonus",
    "final_test_main",
    "final_test_bonus",
    "none",
)
#: Tiers of the Sensorium 2022 release.
TIERS_2022 = ("train", "validation", "test", "final_test")
#: Every tier cortexfm accepts. ``validation`` is also a cortexfm extension for the dynamic tree.
KNOWN_TIERS = frozenset(TIERS_2023) | frozenset(TIERS_2022)
#: Tiers whose responses were withheld by the publisher (zero-filled in the public release).
HIDDEN_TEST_TIERS = frozenset(
    {
        "live_test_main",
        "live_test_bonus",
        "final_test_main",
        "final_test_bonus",
        "test",
        "final_test",
    }
)
TRAIN_TIER = "train"

#: Per-trial modality folders of the dynamic tree, with the expected number of dimensions
#: and which axis is time.
DYNAMIC_MODALITIES = ("videos", "responses", "behavior", "pupil_center")
STATIC_MODALITIES = ("images", "responses", "behavior", "pupil_center")
STATISTIC_NAMES = ("mean", "std", "min", "max", "median")

NEURON_EXTENSIONS = ("area", "layer", "cell_type")
TRIAL_EXTENSIONS = ("stimulus_type", "video_id", "repeat")

DEFAULT_FRAME_RATE = 30.0
