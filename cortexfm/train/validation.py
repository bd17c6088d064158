"""Which trials validate a run (early stopping and model selection), per session.

``train.validation`` is the rule, said out loud when training starts:

- ``"auto"`` (default): the session's ``validation`` tier when it has one; otherwise, as in
  the Sensorium 2023 release (tiers ``train``, ``oracle``, ``live_test_*``,
  ``final_test_*``), the ``"holdout"`` rule;
- ``"holdout"``: a fraction ``train.validation_fraction`` (at least one) of the session's
  *whole* training clips (all repeats of a clip together), drawn with ``train.seed``; they are
  never trained on. When training is limited to some trials (transfer from a few minutes),
  clips are held out from the rest of the training tier first, so the budget is untouched;
- ``"tier:NAME"``: the trials of tier ``NAME``. A tier that ``cortexfm evaluate`` scores
  (``oracle``, ``final_test_*``, ``live_test_*``) is allowed, with a warning: selecting the
  model on it makes its scores optimistic;
- ``"none"``: no validation: no early stopping, and ``best.safetensors`` holds the last weights.

At most ``train.validation_trials`` trials per session are scored at each validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the type only: loading a checkpoint does not load the cohort readers
    from cortexfm.data.cohort import Cohort

TRAIN_TIER = "train"
VALIDATION_TIER = "validation"
#: Tiers that ``cortexfm evaluate`` scores (kept here so train does not import evaluate).
SCORED_TIERS = (
    "oracle",
    "final_test_bonus",
    "final_test_main",
    "live_test_main",
    "live_test_bonus",
)
RULES = ("auto", "holdout", "tier:NAME", "none")


@dataclass
class ValidationPlan:
    """Per session id: the validation trials and the training trials held out for them."""

    trials: dict[str, np.ndarray] = field(default_factory=dict)
    held_out: dict[str, np.ndarray] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)  # said at start-up
    warnings: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return any(len(t) for t in self.trials.values())

    def training_trials(
        self, session_id: str, train_ids: np.ndarray, allowed: np.ndarray | None = None
    ) -> np.ndarray:
        """The training trials a session may draw windows from under this plan."""
        ids = np.setdiff1d(train_ids, self.held_out.get(session_id, []))
        return ids if allowed is None else np.intersect1d(ids, allowed)


def check_rule(rule: str) -> None:
    if rule in ("auto", "holdout", "none") or (rule.startswith("tier:") and len(rule) > 5):
        return
    raise ValueError(
        f"train.validation={rule!r} is not a validation rule; use one of {', '.join(RULES)}"
    )


def plan_validation(
    cohort: Cohort,
    rule: str,
    *,
    fraction: float = 0.1,
    seed: int = 0,
    limit: int = 16,
    allowed_trials: dict[str, np.ndarray] | None = None,
) -> ValidationPlan:
    """The validation trials of every session of ``cohort`` under ``rule`` (module docstring)."""
    check_rule(rule)
    if not 0 < fraction < 1:
        raise ValueError(f"train.validation_fraction must be in (0, 1), got {fraction}")
    plan = ValidationPlan()
    for session in cohort:
        sid = session.session_id
        tiers = set(session.tiers)
        if rule == "none":
            plan.trials[sid] = np.array([], dtype=np.int64)
            plan.messages.append(
                f"{sid}: no validation (train.validation=none): no early stopping, and "
                "best.safetensors holds the last weights"
            )
            continue
        if rule.startswith("tier:"):
            tier = rule[5:]
            if tier not in tiers:
                raise ValueError(
                    f"train.validation={rule!r}: session {sid!r} ({session.path}) has no tier "
                    f"{tier!r}; its tiers are {sorted(tiers)}"
                )
            plan.trials[sid] = session.trials_in(tier)[:limit]
            plan.messages.append(
                f"{sid}: validating on {len(plan.trials[sid])} trials of tier {tier!r} "
                f"(train.validation={rule})"
            )
            if tier in SCORED_TIERS:
                plan.warnings.append(
                    f"{sid}: tier {tier!r} is also what `cortexfm evaluate` scores: the model "
                    "is selected on it, so its scores there will be optimistic"
                )
            continue
        if rule == "auto" and VALIDATION_TIER in tiers:
            plan.trials[sid] = session.trials_in(VALIDATION_TIER)[:limit]
            plan.messages.append(
                f"{sid}: validating on {len(plan.trials[sid])} trials of tier 'validation'"
            )
            continue
        held_out = _hold_out(session, fraction, seed, (allowed_trials or {}).get(sid))
        plan.held_out[sid] = held_out
        plan.trials[sid] = held_out[:limit]
        why = "no 'validation' tier, " if rule == "auto" else ""
        plan.messages.append(
            f"{sid}: {why}validating on {len(held_out)} held-out training trials "
            f"({len(np.unique(np.asarray(session.video_ids)[held_out]))} whole clips, "
            f"train.validation_fraction={fraction}, seed {seed}); they are not trained on"
        )
    return plan


def _hold_out(session, fraction: float, seed: int, allowed: np.ndarray | None) -> np.ndarray:
    """Trial ids of whole training clips held out for validation (module docstring)."""
    train_ids = session.trials_in(TRAIN_TIER)
    if len(train_ids) < 2:
        raise ValueError(
            f"session {session.session_id!r} ({session.path}) has {len(train_ids)} training "
            "trial(s): too few to hold any out for validation; name a tier with "
            "train.validation=tier:NAME or use train.validation=none"
        )
    clips = np.asarray(session.video_ids)[train_ids].astype(str)
    outside = (
        np.array([], dtype=train_ids.dtype) if allowed is None else np.setdiff1d(train_ids, allowed)
    )
    # hold out clips the run would not train on anyway when there are some (transfer from a
    # few minutes); otherwise from the whole tier, keeping at least one clip to train on
    pool = np.unique(clips[np.isin(train_ids, outside)]) if len(outside) else np.unique(clips)
    n = max(1, int(round(fraction * len(np.unique(clips)))))
    n = min(n, len(pool) if len(outside) else len(pool) - 1)
    if n < 1:
        raise ValueError(
            f"session {session.session_id!r} ({session.path}) has a single training clip: "
            "none can be held out for validation; name a tier with "
            "train.validation=tier:NAME or use train.validation=none"
        )
    chosen = np.random.default_rng(seed).permutation(pool)[:n]
    return train_ids[np.isin(clips, chosen)]
