"""``cortexfm validate``: list every problem in a data tree, or summarise a good one.

Besides the tree's structure (folders, headers, shapes), every value is read once:

- **errors** (the tree is not valid): infinite values; an input channel (video, behaviour,
  pupil centre) with no finite value in a trial;
- **warnings** (valid; handled as :mod:`cortexfm.data.gaps` documents): NaN gaps inside a
  trial, per file, with the neurons (unit ids) and frames, since real traces have them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cortexfm.data.errors import DataFormatError
from cortexfm.data.fnn import is_fnn_folder
from cortexfm.data.gaps import INPUT_MODALITIES, frame_ranges
from cortexfm.data.layouts import LAYOUT_NAMES, is_session_folder, open_session
from cortexfm.data.session import (
    MODALITIES,
    DynamicSession,
    Session,
    _read_neuron_meta,
    _read_tiers,
)


@dataclass
class SessionReport:
    path: Path
    problems: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _problems_of_dynamic(path: Path) -> list[str]:
    """Collect every problem of a dynamic tree instead of stopping at the first."""
    problems = [str(p) for p in DynamicSession.folder_problems(path)]
    session = DynamicSession.__new__(DynamicSession)
    Session.__init__(session, path)
    for step in (_read_neuron_meta, _read_tiers):
        try:
            step(session)
        except DataFormatError as err:
            problems.append(str(err))
    if problems:
        return problems
    session._frame_size = (0, 0)
    problems += [str(p) for p in session.trial_problems()]
    return problems


def scan_values(session: Session, progress: bool = True) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` about non-finite values inside every trial's valid frames."""
    errors: list[str] = []
    warnings: list[str] = []
    for trial_id in tqdm(
        range(session.n_trials), desc=f"scanning {session.path.name}", disable=not progress
    ):
        length = int(session.trial_lengths[trial_id])
        for modality in MODALITIES:
            x = session._read(trial_id, modality, 0, length)
            if np.isfinite(x).all():
                continue
            path = session._source(trial_id, modality)
            flat = x.reshape(length, -1)
            inf = np.isinf(flat)
            if inf.any():
                errors.append(
                    f"{path}: {modality} has infinite values at frame(s) "
                    f"{frame_ranges(np.flatnonzero(inf.any(axis=1)))}"
                )
                continue
            nan = np.isnan(flat)
            if modality == "responses":
                neurons = np.flatnonzero(nan.any(axis=0))
                first = neurons[0]
                warnings.append(
                    f"{path}: NaN gap in {len(neurons)} neuron(s), e.g. unit "
                    f"{session.unit_ids[first]} (index {first}) at frame(s) "
                    f"{frame_ranges(np.flatnonzero(nan[:, first]))} of {length}; "
                    "masked out of the loss and the metrics"
                )
                continue
            empty = nan.all(axis=0) if modality != "video" else np.array([nan.any(axis=1).all()])
            if empty.any():
                what = "every frame" if modality == "video" else f"channel {np.argmax(empty)}"
                errors.append(f"{path}: {modality} {what} has no finite value in this trial")
                continue
            assert modality in INPUT_MODALITIES
            filled = "held from the last valid frame" if modality == "video" else "interpolated"
            warnings.append(
                f"{path}: NaN gap in {modality} at frame(s) "
                f"{frame_ranges(np.flatnonzero(nan.any(axis=1)))} of {length}; {filled}"
            )
    return errors, warnings


def summarize_session(session: Session) -> dict:
    """Sessions, neurons, trials per tier, minutes, and unique clips/repeats per tier."""
    lengths = session.trial_lengths
    per_tier: dict[str, dict] = {}
    for tier in dict.fromkeys(session.tiers):
        ids = session.trials_in(str(tier))
        counts = np.unique(session.video_ids[ids].astype(str), return_counts=True)[1]
        per_tier[str(tier)] = {
            "trials": len(ids),
            "minutes": round(float(lengths[ids].sum()) / session.frame_rate / 60, 2),
            "unique_clips": len(counts),
            "repeated_clips": int(np.sum(counts > 1)),
            "max_repeats": int(counts.max(initial=0)),
        }
    return {
        "session_id": session.session_id,
        "layout": session.layout,
        "format": LAYOUT_NAMES.get(session.layout, session.layout),
        "read_from": session.info.get("responses_from"),
        "neurons": session.n_neurons,
        "trials": session.n_trials,
        "frame_size": list(session.frame_size),
        "frame_rate": session.frame_rate,
        "minutes": round(float(lengths.sum()) / session.frame_rate / 60, 2),
        "tiers": per_tier,
    }


def validate_session(path: Path, progress: bool = True) -> SessionReport:
    report = SessionReport(path)
    try:
        if (path / "data" / "images").is_dir() or not (path / "data").is_dir():
            session = open_session(path)
        else:
            report.problems = _problems_of_dynamic(path)
            if report.problems:
                return report
            session = open_session(path)
        errors, report.warnings = scan_values(session, progress=progress)
        if errors:
            report.problems += errors
            return report
        report.summary = summarize_session(session)
    except DataFormatError as err:
        report.problems.append(str(err))
    return report


def validate_tree(path: str | Path, progress: bool = True) -> list[SessionReport]:
    """Validate one session folder or every session folder inside ``path``."""
    root = Path(path)
    if not root.exists():
        return [SessionReport(root, [f"{root}: folder does not exist"])]
    if is_session_folder(root) or (root / "data").is_dir() or is_fnn_folder(root):
        return [validate_session(root, progress)]
    if not root.is_dir():
        return [SessionReport(root, [f"{root}: not a session folder or .nwb file"])]
    candidates = [
        p
        for p in sorted(root.iterdir())
        if is_session_folder(p) or (p.is_dir() and ((p / "data").is_dir() or (p / "meta").is_dir()))
    ]
    if not candidates:
        return [SessionReport(root, [f"{root}: no session folders (with data/ and meta/) found"])]
    return [validate_session(p, progress) for p in candidates]


#: Warnings printed per session (all of them are in ``SessionReport.warnings``).
MAX_WARNINGS = 20


def format_reports(reports: list[SessionReport]) -> str:
    lines: list[str] = []
    for r in reports:
        if r.problems:
            lines.append(f"✗ {r.path}: {len(r.problems)} problem(s)")
            lines += [f"    - {p}" for p in r.problems]
        if r.warnings:
            shown = r.warnings[:MAX_WARNINGS]
            more = len(r.warnings) - len(shown)
            lines.append(f"! {r.path}: {len(r.warnings)} warning(s)")
            lines += [f"    - {w}" for w in shown]
            if more:
                lines.append(f"    ... and {more} more")
        if r.problems:
            continue
        s = r.summary
        lines.append(
            f"✓ {s['session_id']} ({s['format']}): {s['neurons']} neurons, {s['trials']} trials, "
            f"{s['minutes']} min, frames {s['frame_size'][0]}x{s['frame_size'][1]}"
        )
        if s["layout"] in ("nwb", "experanto"):
            source = f"; responses from {s['read_from']}" if s.get("read_from") else ""
            lines.append(
                "    every signal interpolated onto the stimulus frames at "
                f"{s['frame_rate']:g} Hz{source}"
            )
        for tier, t in s["tiers"].items():
            lines.append(
                f"    {tier:<17} {t['trials']:>5} trials {t['minutes']:>8.2f} min "
                f"{t['unique_clips']:>5} unique clips ({t['repeated_clips']} repeated, "
                f"up to {t['max_repeats']}x)"
            )
    ok = sum(not r.problems for r in reports)
    lines.append(f"{ok}/{len(reports)} session(s) valid")
    return "\n".join(lines)
