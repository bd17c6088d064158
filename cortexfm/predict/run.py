"""``cortexfm predict``'s work, callable from Python: a movie file to predicted responses, or
a Sensorium 2023 tree's test tiers to the competition's submission files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cortexfm.data.movies import FrameFormat, Movie
from cortexfm.model.network import FoundationModel
from cortexfm.predict.stream import (
    PredictionResult,
    load_signal,
    native_bfloat16,
    parse_unit_ids,
    predict_movie,
)


def predict_file(
    model: FoundationModel,
    movie: str | Path,
    out: str | Path,
    *,
    data: str | Path | None = None,
    session_id: str | None = None,
    frame_size: tuple[int, int] = (36, 64),
    frame_rate: float = 30.0,
    source_rate: float | None = None,
    layout: str = "thw",
    fit: str = "crop",
    behavior: str | Path | None = None,
    pupil_center: str | Path | None = None,
    neurons: str | None = None,
    chunk: int = 1024,
    segments: int = 1,
    precision: str = "float32",
    say: Callable[[str], None] = print,
) -> PredictionResult:
    """Predict one session's neurons for a movie file (video, ``.npy`` or image folder).

    The session is ``session_id``, else the first session of ``data``, else the model's only
    one. Frames are converted to ``data``'s frame size and rate (else ``frame_size`` and
    ``frame_rate``); behaviour and eye position not given are held at the session's training
    means. ``say`` receives what is converted and assumed.
    """
    from cortexfm.data import open_cohort  # the cohort readers only when a tree is given

    session = open_cohort(data)[0] if data else None
    session_id = session_id or (session.session_id if session else None)
    if session_id is None:
        if len(model.session_ids) != 1:
            raise ValueError(f"choose a session with --session; the model has {model.session_ids}")
        session_id = model.session_ids[0]
    frame_format = (
        FrameFormat(*session.frame_size, session.frame_rate)
        if session
        else FrameFormat(*frame_size, frame_rate)
    )
    source = Movie(movie, source_rate=source_rate, layout=layout, fit=fit)
    say(f"converting {source.describe(frame_format)}")
    if not (behavior and pupil_center):
        say("behaviour and eye position not given are held at the session's training means")
    device = next(model.parameters()).device.type
    if precision == "bfloat16" and not native_bfloat16(device):
        say(
            f"bfloat16 is not native on this {device} (no AVX512 or AMX): running float32, "
            "which is faster here"
        )
        precision = "float32"
    return predict_movie(
        model,
        session_id,
        source,
        out,
        frame_format=frame_format,
        behavior=load_signal(behavior, "behavior") if behavior else None,
        pupil_center=load_signal(pupil_center, "pupil_center") if pupil_center else None,
        unit_ids=parse_unit_ids(neurons) if neurons else None,
        chunk=chunk,
        segments=segments,
        precision=precision,
    )


def predict_submission(
    model: FoundationModel, data: str | Path, tiers: list[str], out: str | Path
) -> list[Path]:
    """The Sensorium 2023 submission files of ``data``'s ``tiers`` (one per tier)."""
    # here, not at the top: a movie's prediction needs neither the cohort readers nor pyarrow
    from cortexfm.data import open_cohort
    from cortexfm.predict.submission import sensorium2023_submission

    return sensorium2023_submission(model, open_cohort(data), tiers, out)
