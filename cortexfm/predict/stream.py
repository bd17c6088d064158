"""Any movie through a trained twin, streamed: ``cortexfm predict CKPT MOVIE --out FILE``.

The movie is converted to the session's frames (:mod:`cortexfm.data.movies`), fed to the model
in chunks with its recurrent state carried over (so a chunked prediction equals a whole one),
and the predicted responses are written chunk by chunk, so an hour of video needs the memory of
one chunk. Output, in the recordings' raw units, ``[time, neurons]`` (row ``k`` is frame ``k``,
shown at ``k / frame_rate`` s):

- ``.npy``: float32 ``[time, neurons]``, with the neurons' unit ids in ``<stem>_unit_ids.npy``;
- ``.parquet``: columns ``frame``, ``time_s`` and one float32 column per neuron named by its
  unit id.

Behaviour (pupil dilation, running speed) and eye position (pupil centre) may be given as
``[time, 2]`` arrays at the session's frame rate; when they are not, they are held at the
session's training means (the animal sitting still, looking at the centre of its usual gaze),
which the checkpoint stores with the weights.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cortexfm.atomic import atomic_path
from cortexfm.data.errors import DataFormatError
from cortexfm.data.movies import FrameFormat, Movie
from cortexfm.data.npy import open_array
from cortexfm.model.network import FoundationModel

OUTPUT_FORMATS = (".npy", ".parquet")
#: Frames of warm-up before each parallel segment (5 s at 30 Hz).
WARMUP_FRAMES = 150
#: Frames per pass through the core (bounds the activations' memory).
CORE_CHUNK = 150
#: Sensorium 2023's frames: 36 x 64 pixels at 30 Hz.
SENSORIUM_FRAMES = FrameFormat(36, 64, 30.0)


@dataclass
class PredictionResult:
    path: Path
    frames: int
    neurons: int
    seconds: float  # wall-clock time of the whole run
    frame_rate: float  # of the predicted frames, Hz

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def load_signal(path: str | Path, name: str) -> np.ndarray:
    """A ``[time, 2]`` behaviour or pupil-centre array from ``.npy`` (``[2, time]`` accepted)."""
    path = Path(path)
    array = open_array(path, mmap=False)
    if array.ndim == 2 and array.shape[1] != 2 and array.shape[0] == 2:
        array = array.T
    if array.ndim != 2 or array.shape[1] != 2:
        raise DataFormatError(path, f"{name} shape {array.shape}, expected [time, 2]")
    if array.dtype.kind not in "fiu" or not np.isfinite(array).all():
        raise DataFormatError(path, f"{name} must be finite numbers")
    return np.ascontiguousarray(array, dtype=np.float32)


def parse_unit_ids(text: str) -> list[int]:
    """``"12,57"`` or a ``.npy`` / text file of unit ids -> a list of ints."""
    path = Path(text)
    if path.suffix in (".npy", ".txt", ".csv") or path.exists():
        if not path.exists():
            raise DataFormatError(path, "unit id file does not exist")
        values = (
            open_array(path, mmap=False).reshape(-1)
            if path.suffix == ".npy"
            else np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=1).reshape(-1)
        )
        return [int(v) for v in values]
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(
            f"--neurons must be unit ids like 12,57,301 or a file, got {text!r}"
        ) from None


def select_neurons(
    model: FoundationModel, session_id: str, unit_ids: Sequence[int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, unit ids)`` of the requested neurons (all of them by default)."""
    all_ids = model.session(session_id).unit_ids.cpu().numpy()
    if unit_ids is None:
        return np.arange(len(all_ids)), all_ids
    position = {int(u): i for i, u in enumerate(all_ids)}
    missing = [int(u) for u in unit_ids if int(u) not in position]
    if missing:
        raise KeyError(
            f"unit id(s) {missing[:10]} are not neurons of session {session_id!r} "
            f"({len(all_ids)} neurons, unit ids {all_ids.min()}-{all_ids.max()})"
        )
    indices = np.array([position[int(u)] for u in unit_ids], dtype=np.int64)
    return indices, all_ids[indices]


class _NpyStream:
    """Appends float32 rows to a ``.npy`` file whose length is known only at the end."""

    HEADER_BYTES = 128  # magic (8) + length (2) + the header dict, padded

    def __init__(self, path: Path, n_columns: int) -> None:
        self.file = open(path, "wb")  # noqa: SIM115 (closed in close())
        self.n_columns, self.rows = n_columns, 0
        self.file.write(b"\0" * self.HEADER_BYTES)

    def write(self, block: np.ndarray) -> None:
        self.file.write(memoryview(np.ascontiguousarray(block, dtype="<f4")).cast("B"))
        self.rows += len(block)

    def close(self) -> None:
        text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({self.rows}, {self.n_columns}), }}"
        text = text.ljust(self.HEADER_BYTES - 10 - 1) + "\n"
        self.file.seek(0)
        self.file.write(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode())
        self.file.close()


class _ParquetStream:
    """Appends row groups of ``frame``, ``time_s`` and one column per neuron."""

    def __init__(self, path: Path, unit_ids: np.ndarray, frame_rate: float) -> None:
        import pyarrow as pa  # here: an .npy prediction's start-up does not load pyarrow
        import pyarrow.parquet as pq

        self.pa = pa
        self.names = [str(int(u)) for u in unit_ids]
        fields = [pa.field("frame", pa.int64()), pa.field("time_s", pa.float64())]
        fields += [pa.field(n, pa.float32()) for n in self.names]
        self.writer = pq.ParquetWriter(path, pa.schema(fields))
        self.frame_rate, self.rows = frame_rate, 0

    def write(self, block: np.ndarray) -> None:
        pa = self.pa
        frames = np.arange(self.rows, self.rows + len(block))
        columns = [pa.array(frames), pa.array(frames / self.frame_rate)]
        columns += [pa.array(block[:, j]) for j in range(block.shape[1])]
        self.writer.write_table(pa.Table.from_arrays(columns, schema=self.writer.schema))
        self.rows += len(block)

    def close(self) -> None:
        self.writer.close()


class _BackgroundWriter:
    """Hands each block to ``writer`` in a background thread, so writing one chunk overlaps
    predicting the next (file writes release the GIL; profiled on ``benchmarks/predict_speed.py``'s
    movie, 1.5 s of a 10-minute, 8,000-neuron prediction was spent writing its 576 MB). An
    error in the writer reaches the caller at its next ``write`` or at ``close``."""

    def __init__(self, writer: _NpyStream | _ParquetStream) -> None:
        self.writer = writer
        self.blocks: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="cortexfm-write", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (block := self.blocks.get()) is not None:
            if self.error is None:
                try:
                    self.writer.write(block)
                except BaseException as err:  # raised in the caller
                    self.error = err

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def write(self, block: np.ndarray) -> None:
        self._raise()
        self.blocks.put(block)

    def close(self) -> None:
        self.blocks.put(None)
        self.thread.join()
        self.writer.close()
        self._raise()


def _window(signal: np.ndarray | None, rest: np.ndarray, start: int, n: int, name: str):
    if signal is None:
        return np.tile(rest, (n, 1)).astype(np.float32)
    if signal.shape[0] < start + n:
        raise ValueError(
            f"{name} has {signal.shape[0]} frames but the movie is longer (at least "
            f"{start + n} frames at the session's frame rate)"
        )
    return signal[start : start + n]


def _prefetched(chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """``chunks``, with the next one decoded in a background thread while the model runs on
    the current one (video decoding releases the GIL; on 2 CPU cores, 2,181-2,265 against
    1,881-2,126 frames/s without it, best of 3, twice each: part of the 0.39 s that decoding
    takes per 3,600 frames). Errors reach the caller at the chunk where they happened."""
    slot: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()  # the consumer has left

    def offer(item: tuple) -> bool:
        while not stop.is_set():
            try:
                slot.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not offer((chunk, None)):
                    return
        except BaseException as err:  # raised in the consumer, at this chunk
            offer((None, err))
            return
        offer((None, None))

    worker = threading.Thread(target=produce, name="cortexfm-decode", daemon=True)
    worker.start()
    try:
        while True:
            chunk, err = slot.get()
            if err is not None:
                raise err
            if chunk is None:
                return
            yield chunk
    finally:
        stop.set()
        worker.join()


#: ``predict_movie``'s arithmetic: exact float32, or bfloat16 autocast (faster, ~3 digits).
PRECISIONS = ("float32", "bfloat16")


def native_bfloat16(device: str) -> bool:
    """Whether ``device`` ("cpu", "cuda") runs bfloat16 convolutions in fast kernels.

    A CPU needs AVX512 (ideally AVX512-BF16 or AMX): on an AVX2-only CPU PyTorch falls back
    to its reference convolution, about 20x slower than float32 (measured on an AMD EPYC,
    ``benchmarks/predict_speed.py``).
    """
    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def _predict_segments(
    model: FoundationModel,
    session_id: str,
    inputs: list[np.ndarray],
    context: int,
    segment: int,
    warmup: int,
) -> np.ndarray:
    """Predict ``inputs`` (video, behaviour, pupil centre, each ``[context + n, ...]``; the
    first ``context`` frames were already predicted) from frame ``context`` on, as segments of
    ``segment`` frames run side by side as one batch, each after (up to) ``warmup`` frames.

    A segment that starts within ``warmup`` frames of the movie's start sees its whole past
    (exactly the sequential result); the others start from rest ``warmup`` frames early.
    Returns ``[n, neurons]``.
    """
    n = len(inputs[0]) - context
    starts = list(range(context, context + n, segment))
    groups: dict[int, list[int]] = {}  # frames of past -> segment starts
    for start in starts:
        groups.setdefault(min(warmup, start), []).append(start)
    pieces: dict[int, np.ndarray] = {}
    for past, members in groups.items():
        length = past + segment
        batch = []
        for x in inputs:
            windows = []
            for start in members:
                w = x[start - past : start + segment]
                if len(w) < length:  # the last segment: pad at its end (causal: harmless)
                    w = np.concatenate([w, np.repeat(w[-1:], length - len(w), axis=0)])
                windows.append(w)
            batch.append(np.stack(windows))
        out, _ = model.predict(session_id, *batch, chunk=CORE_CHUNK)
        out = out[:, past:].float().cpu().numpy()
        for k, start in enumerate(members):
            pieces[start] = out[k, : min(segment, context + n - start)]
    return np.concatenate([pieces[start] for start in starts])


@torch.no_grad()
def predict_movie(
    model: FoundationModel,
    session_id: str,
    movie: Movie,
    out: str | Path,
    *,
    frame_format: FrameFormat = SENSORIUM_FRAMES,
    behavior: np.ndarray | None = None,
    pupil_center: np.ndarray | None = None,
    unit_ids: Sequence[int] | None = None,
    chunk: int = 600,
    segments: int = 1,
    warmup: int = WARMUP_FRAMES,
    precision: str = "float32",
    progress: bool = True,
) -> PredictionResult:
    """Predict ``session_id``'s responses to ``movie`` into ``out`` (.npy or .parquet).

    ``behavior`` and ``pupil_center`` are ``[time, 2]`` raw arrays at ``frame_format``'s rate
    covering the converted movie (default: the session's training means). The file appears
    only when complete.

    ``segments=1`` (the default) is one exact pass: the recurrent state is carried from chunk
    to chunk, so the result does not depend on ``chunk``. ``segments=N`` predicts N stretches
    of ``chunk`` frames side by side as one batch, each starting from rest ``warmup`` frames
    before its first frame: a trained twin's memory fades within a few seconds
    (``benchmarks/predict_speed.py --check-warmup`` measures it), so this equals the exact
    pass to float precision, and the batch keeps a GPU busy. On a 2-core CPU the exact pass is
    the faster one (``benchmarks/predict_speed.py``: the warm-up frames cost more than the
    batch saves).

    ``precision="bfloat16"`` runs the model under bfloat16 autocast: about twice the core's
    speed on CPUs with native bfloat16 (AVX512-BF16, AMX) or on GPUs, at about three
    significant digits (``benchmarks/predict_speed.py`` measures both), and far slower where
    bfloat16 is not native (:func:`native_bfloat16`; ``predict_file`` then runs float32).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    out = Path(out)
    if out.suffix not in OUTPUT_FORMATS:
        raise ValueError(f"--out must end in {' or '.join(OUTPUT_FORMATS)}, got {out.name!r}")
    model.session(session_id)  # a clear error for an unknown session
    indices, ids = select_neurons(model, session_id, unit_ids)
    rest_behavior, rest_pupil = model.resting_inputs(session_id)
    select = None if len(indices) == model.n_neurons(session_id) else indices
    if chunk < 1 or segments < 1 or warmup < 0:
        raise ValueError(
            f"chunk and segments must be >= 1, warmup >= 0: {chunk}, {segments}, {warmup}"
        )
    started = time.perf_counter()
    total = movie.n_source_frames
    if total and movie.source_rate:
        total = int(np.ceil(total * frame_format.frame_rate / movie.source_rate))
    for name, signal in (("behavior", behavior), ("pupil_center", pupil_center)):
        if signal is not None and total and signal.shape[0] < total:
            raise ValueError(
                f"{name} has {signal.shape[0]} frames but the movie has {total} at "
                f"{frame_format.frame_rate:g} Hz"
            )
    with atomic_path(out) as tmp:
        writer = _BackgroundWriter(
            _NpyStream(tmp, len(ids))
            if out.suffix == ".npy"
            else _ParquetStream(tmp, ids, frame_format.frame_rate)
        )
        state = None
        done = 0
        past: list[np.ndarray] = []  # the last `warmup` frames of inputs (parallel segments)
        bar = tqdm(total=total, desc=f"predicting {session_id}", unit="frame", disable=not progress)
        device = next(model.parameters()).device.type
        try:
            for video in _prefetched(movie.chunks(frame_format, chunk * segments)):
                n = len(video)
                b = _window(behavior, rest_behavior, done, n, "behavior")
                p = _window(pupil_center, rest_pupil, done, n, "pupil_center")
                with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
                    if segments == 1:
                        predicted, state = model.predict(
                            session_id, video, b, p, state, chunk=chunk
                        )
                        responses = predicted.float().cpu().numpy()
                    else:
                        inputs = [
                            np.concatenate([old, new]) if past else new
                            for old, new in zip(past or [None] * 3, (video, b, p), strict=True)
                        ]
                        context = len(past[0]) if past else 0
                        responses = _predict_segments(
                            model, session_id, inputs, context, chunk, warmup
                        )
                        past = [x[-warmup:] for x in inputs] if warmup else []
                if select is not None:
                    responses = responses[:, indices]
                writer.write(responses)
                done += n
                bar.update(n)
        finally:
            writer.close()
            bar.close()
        if out.suffix == ".npy":
            with (
                atomic_path(out.with_name(f"{out.stem}_unit_ids.npy")) as ids_tmp,
                open(ids_tmp, "wb") as f,
            ):
                np.save(f, ids.astype(np.int64), allow_pickle=False)
    return PredictionResult(
        out, done, len(ids), time.perf_counter() - started, frame_format.frame_rate
    )
