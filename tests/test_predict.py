"""``cortexfm predict``: movies of every kind give the same predictions, streamed and checked."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from cortexfm.cli import main
from cortexfm.data.movies import FrameFormat, Movie
from cortexfm.data.synthetic import write_synthetic_session
from cortexfm.predict import predict_movie
from cortexfm.predict.submission import submission_name
from cortexfm.train import load_checkpoint
from tests.conftest import TINY_TRAINING

SESSION = "sim-mouse0-s0"


def write_video(
    path: Path,
    frames: np.ndarray,
    fps: int = 30,
    codec: str = "ffv1",
    pix_fmt: str | None = None,
    full_range: bool = False,
) -> Path:
    """Encode uint8 ``[time, height, width]`` frames with PyAV (ffv1 is lossless).

    ``full_range``: the frames are stored as the Y plane of yuv420p as they are (grey chroma),
    and the file says so (JPEG range)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:]
        stream.pix_fmt = pix_fmt or ("gray" if codec == "ffv1" else "yuv420p")
        if full_range:
            stream.codec_context.color_range = 2  # JPEG range: Y spans 0-255
        stream.time_base = Fraction(1, fps)
        for i, frame in enumerate(frames):
            if full_range:  # Y as given, then the two grey quarter-size chroma planes
                h, w = frame.shape
                chroma = np.full((h // 2, w), 128, np.uint8)
                video_frame = av.VideoFrame.from_ndarray(np.vstack([frame, chroma]), "yuv420p")
                video_frame.color_range = 2
            else:
                video_frame = av.VideoFrame.from_ndarray(frame, format="gray")
            video_frame.pts = i
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    rng = np.random.default_rng(0)
    smooth = rng.normal(size=(40, 9, 16)).cumsum(0)
    big = np.kron(smooth, np.ones((4, 4)))  # [40, 36, 64]
    return np.clip(128 + 20 * big, 0, 255).astype(np.uint8)


def _predict(checkpoint: Path, movie: Path, out: Path, *extra: str) -> int:
    return main(
        ["predict", str(checkpoint), str(movie), "--session", SESSION, "--out", str(out), *extra]
    )


def test_video_file_equals_npy(tiny_checkpoint: Path, frames: np.ndarray, tmp_path: Path, capsys):
    video = write_video(tmp_path / "movie.mkv", frames)
    np.save(tmp_path / "movie.npy", frames)
    assert _predict(tiny_checkpoint, video, tmp_path / "from_video.npy") == 0
    out = capsys.readouterr().out
    assert "movie.mkv (video, " in out and ": 36x64; luma" in out and "30 fps" in out
    assert _predict(tiny_checkpoint, tmp_path / "movie.npy", tmp_path / "from_npy.npy") == 0
    a, b = np.load(tmp_path / "from_video.npy"), np.load(tmp_path / "from_npy.npy")
    model = load_checkpoint(tiny_checkpoint).model
    assert a.shape == (40, model.n_neurons(SESSION)) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-5)
    ids = np.load(tmp_path / "from_video_unit_ids.npy")
    np.testing.assert_array_equal(ids, model.session(SESSION).unit_ids.numpy())
    # a lossy mp4 decodes to nearly the same frames
    mp4 = write_video(tmp_path / "movie.mp4", frames, codec="libx264")
    assert _predict(tiny_checkpoint, mp4, tmp_path / "from_mp4.npy") == 0
    assert np.load(tmp_path / "from_mp4.npy").shape == a.shape


def test_yuv_video_luma_is_the_source_grey_level(frames: np.ndarray, tmp_path: Path):
    """8-bit YUV is read from its Y plane: limited range expanded to 0-255, full range as is;
    both within the encoder's rounding of the grey frames written (lossless ffv1)."""
    target = FrameFormat()
    for full_range, tolerance in ((False, 0.6), (True, 1e-6)):
        video = write_video(
            tmp_path / f"yuv{int(full_range)}.mkv", frames, pix_fmt="yuv420p", full_range=full_range
        )
        movie = Movie(video)
        assert "luma of the decoded frames" in movie.describe(target)
        decoded = np.concatenate(list(movie.chunks(target)))
        assert decoded.shape == frames.shape and decoded.dtype == np.float32
        np.testing.assert_allclose(decoded, frames, atol=tolerance)


def test_stream_equals_whole_prediction_and_rest_is_the_training_mean(
    tiny_checkpoint: Path, frames: np.ndarray, tmp_path: Path
):
    model = load_checkpoint(tiny_checkpoint).model
    np.save(tmp_path / "movie.npy", frames)
    behavior, pupil = model.resting_inputs(SESSION)
    whole, _ = model.predict(
        SESSION, frames.astype(np.float32), np.tile(behavior, (40, 1)), np.tile(pupil, (40, 1))
    )
    movie = Movie(tmp_path / "movie.npy")
    # sequential chunks; and parallel segments whose warm-up reaches back to the movie's start
    for segments, warmup in ((1, 0), (3, 40)):
        result = predict_movie(
            model,
            SESSION,
            movie,
            tmp_path / "p.npy",
            chunk=7,
            segments=segments,
            warmup=warmup,
            progress=False,
        )
        assert result.frames == 40
        np.testing.assert_allclose(np.load(tmp_path / "p.npy"), whole.numpy(), atol=1e-5)
    # a short warm-up: segments start from rest and differ, but only near their starts
    predict_movie(
        model, SESSION, movie, tmp_path / "p.npy", chunk=10, segments=4, warmup=2, progress=False
    )
    short = np.load(tmp_path / "p.npy")
    assert not np.allclose(short[10:13], whole.numpy()[10:13], atol=1e-5)


def test_parquet_subset_and_given_behavior(
    tiny_checkpoint: Path, frames: np.ndarray, tmp_path: Path
):
    model = load_checkpoint(tiny_checkpoint).model
    np.save(tmp_path / "movie.npy", frames)
    ids = model.session(SESSION).unit_ids.numpy()
    rng = np.random.default_rng(1)
    behavior = rng.uniform(1, 5, size=(40, 2)).astype(np.float32)
    pupil = rng.normal(size=(2, 40)).astype(np.float32)  # the Sensorium layout is accepted
    np.save(tmp_path / "behavior.npy", behavior)
    np.save(tmp_path / "pupil.npy", pupil)
    extra = ["--neurons", f"{ids[3]},{ids[0]}", "--behavior", str(tmp_path / "behavior.npy")]
    extra += ["--pupil-center", str(tmp_path / "pupil.npy")]
    assert _predict(tiny_checkpoint, tmp_path / "movie.npy", tmp_path / "p.parquet", *extra) == 0
    table = pd.read_parquet(tmp_path / "p.parquet")
    assert list(table.columns) == ["frame", "time_s", str(ids[3]), str(ids[0])]
    np.testing.assert_allclose(table.time_s, np.arange(40) / 30.0)
    whole, _ = model.predict(SESSION, frames.astype(np.float32), behavior, pupil.T)
    np.testing.assert_allclose(table.iloc[:, 2:].to_numpy(), whole.numpy()[:, [3, 0]], atol=1e-5)


@pytest.mark.parametrize("native", [True, False])
def test_bfloat16_precision_is_close_and_checked(
    tiny_checkpoint: Path, frames: np.ndarray, tmp_path: Path, monkeypatch, capsys, native: bool
):
    """--precision bfloat16 (autocast; the readout sums in float32) tracks float32 where
    bfloat16 is native, and falls back to float32, saying so, where it is not (an AVX2 CPU's
    bfloat16 convolutions are ~20x slower than float32)."""
    monkeypatch.setattr("cortexfm.predict.run.native_bfloat16", lambda device: native)
    np.save(tmp_path / "movie.npy", frames)
    extra = ["--precision", "bfloat16"]
    assert _predict(tiny_checkpoint, tmp_path / "movie.npy", tmp_path / "b.npy", *extra) == 0
    said = capsys.readouterr().out
    assert _predict(tiny_checkpoint, tmp_path / "movie.npy", tmp_path / "f.npy") == 0
    fast, exact = np.load(tmp_path / "b.npy"), np.load(tmp_path / "f.npy")
    assert fast.dtype == np.float32 and fast.shape == exact.shape
    if not native:
        assert "bfloat16 is not native" in said and "running float32" in said
        np.testing.assert_array_equal(fast, exact)
        return
    assert "not native" not in said
    assert not np.array_equal(fast, exact)  # it did run in bfloat16
    r = [np.corrcoef(fast[:, i], exact[:, i])[0, 1] for i in range(exact.shape[1])]
    assert np.nanmin(r) > 0.95
    model = load_checkpoint(tiny_checkpoint).model
    with pytest.raises(ValueError, match="precision must be one of"):
        predict_movie(
            model,
            SESSION,
            Movie(tmp_path / "movie.npy"),
            tmp_path / "x.npy",
            precision="float16",
            progress=False,
        )


def test_frame_rate_size_and_image_folder_conversion(frames: np.ndarray, tmp_path: Path):
    np.save(tmp_path / "fast.npy", np.repeat(frames[:10], 2, axis=0))  # 20 frames at 60 Hz
    movie = Movie(tmp_path / "fast.npy", source_rate=60)
    converted = np.concatenate(list(movie.chunks(FrameFormat(36, 64, 30.0), chunk=4)))
    np.testing.assert_array_equal(converted, frames[:10].astype(np.float32))
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):  # colour images at twice the size, shown at 10 Hz
        rgb = np.repeat(np.kron(frames[i], np.ones((2, 2), np.uint8))[..., None], 3, axis=2)
        Image.fromarray(rgb).save(folder / f"{i:02d}.png")
    movie = Movie(folder, source_rate=10)
    out = np.concatenate(list(movie.chunks(FrameFormat(36, 64, 30.0))))
    assert out.shape == (9, 36, 64)
    np.testing.assert_allclose(out[3], frames[1], atol=1e-3)  # area averaging of 2x2 blocks
    wide = Movie(tmp_path / "fast.npy", source_rate=60, fit="crop")
    assert "36x64 centre-cropped to 18x64;" in wide.describe(FrameFormat(18, 64, 30.0))


def test_bad_inputs_give_one_clear_line(
    tiny_checkpoint: Path, frames: np.ndarray, tmp_path: Path, capsys
):
    np.save(tmp_path / "movie.npy", frames)
    np.save(tmp_path / "thin.npy", np.zeros((5, 4, 400), np.uint8))
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x01 not a video" * 100)
    np.save(tmp_path / "short_behavior.npy", np.ones((10, 2), np.float32))
    movie = str(tmp_path / "movie.npy")
    cases = {
        "unknown session id 'mouse9'": [movie, "--session", "mouse9"],
        "broken.mp4: not a readable video": [str(tmp_path / "broken.mp4"), "--session", SESSION],
        "thin.npy: frame size 4x400 cannot be converted": [
            str(tmp_path / "thin.npy"),
            "--session",
            SESSION,
        ],
        "nowhere.mp4: stimulus file or folder does not exist": [
            str(tmp_path / "nowhere.mp4"),
            "--session",
            SESSION,
        ],
        "unit id(s) [999999]": [movie, "--session", SESSION, "--neurons", "999999"],
        "behavior has 10 frames but the movie has 40 at 30 Hz": [
            movie,
            "--session",
            SESSION,
            "--behavior",
            str(tmp_path / "short_behavior.npy"),
        ],
    }
    for fragment, args in cases.items():
        out = tmp_path / "out.npy"
        assert main(["predict", str(tiny_checkpoint), *args, "--out", str(out)]) == 2, fragment
        err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("cortexfm")]
        assert len(err) == 1 and fragment in err[0], (fragment, err)
        assert not out.exists()  # nothing half-written


def test_sensorium2023_submission_file(tmp_path: Path):
    tiers = ("train",) * 6 + ("oracle",) * 2 + ("live_test_main",) * 2 + ("final_test_main",) * 3
    root = tmp_path / "tree"
    for m in range(2):
        write_synthetic_session(
            root / f"dynamic{m}-1-1-Video-abc",
            n_neurons=7 + m,
            tiers=tiers,
            trial_lengths=[80, 90, 70, 80, 80, 80, 80, 80, 75, 85, 60, 95, 80],
            array_length=100,
            frame_size=(18, 32),
            seed=m,
        )
    run = tmp_path / "run"
    train = ["train", "--data", str(root), "--out", str(run), "--preset", "tiny", *TINY_TRAINING]
    assert main(train) == 0
    checkpoint = run / "best.safetensors"
    out = tmp_path / "submission"
    args = ["predict", str(checkpoint), "--data", str(root), "--format", "sensorium2023"]
    assert main([*args, "--tiers", "live_test_main,final_test_main", "--out", str(out)]) == 0
    model = load_checkpoint(checkpoint).model
    from cortexfm.data import open_cohort

    cohort = open_cohort(root)
    for tier in ("live_test_main", "final_test_main"):
        path = out / submission_name(tier)
        assert path.name == f"predictions_file_{tier}_main_track.parquet.brotli"
        meta = pq.ParquetFile(path).metadata
        assert meta.row_group(0).column(0).compression == "BROTLI"
        table = pd.read_parquet(path)
        assert list(table.columns) == ["mouse", "trial_indices", "prediction", "neuron_ids"]
        assert len(table) == 2 * tiers.count(tier)
        for row in table.itertuples():
            session = cohort.session(row.mouse)
            assert session.tiers[row.trial_indices] == tier
            prediction = np.stack(row.prediction)  # [neurons, frames - 50]
            trial = session.trial(row.trial_indices)
            assert prediction.shape == (session.n_neurons, trial.n_frames - 50)
            np.testing.assert_array_equal(row.neuron_ids, session.unit_ids.astype(np.uint32))
            expected, _ = model.predict(
                session.session_id, trial.video, trial.behavior, trial.pupil_center
            )
            np.testing.assert_allclose(prediction, expected.numpy()[50:].T, rtol=1e-5, atol=1e-6)


def test_prefetched_chunks_keep_order_errors_and_stop_early():
    from cortexfm.predict.stream import _prefetched

    def chunks(fail_at: int | None):
        for i in range(5):
            if i == fail_at:
                raise ValueError(f"frame {i} is corrupt")
            yield np.full(3, i)

    assert [int(c[0]) for c in _prefetched(chunks(None))] == [0, 1, 2, 3, 4]
    seen = []
    with pytest.raises(ValueError, match="frame 3 is corrupt"):
        for c in _prefetched(chunks(3)):
            seen.append(int(c[0]))
    assert seen == [0, 1, 2]
    for _ in _prefetched(chunks(None)):  # leaving early stops the decoding thread
        break
    import threading

    assert not any(t.name == "cortexfm-decode" for t in threading.enumerate())


def test_background_writer_keeps_order_and_reports_a_failed_write():
    from cortexfm.predict.stream import _BackgroundWriter

    class Recorder:
        def __init__(self, fail_at: int | None) -> None:
            self.blocks: list[int] = []
            self.fail_at, self.closed = fail_at, False

        def write(self, block: np.ndarray) -> None:
            if len(self.blocks) == self.fail_at:
                raise OSError("No space left on device")
            self.blocks.append(int(block[0]))

        def close(self) -> None:
            self.closed = True

    recorder = Recorder(None)
    writer = _BackgroundWriter(recorder)
    for i in range(6):
        writer.write(np.full(3, i))
    writer.close()
    assert recorder.blocks == [0, 1, 2, 3, 4, 5] and recorder.closed
    recorder = Recorder(1)
    writer = _BackgroundWriter(recorder)
    with pytest.raises(OSError, match="No space left"):
        try:  # as predict_movie does: close in any case, which also reports the error
            for i in range(6):
                writer.write(np.full(3, i))
        finally:
            writer.close()
    assert recorder.blocks == [0] and recorder.closed


def test_predict_loads_neither_pandas_nor_the_cohort_readers():
    """``cortexfm predict`` of a movie imports the model and the movie reader only: the data
    layer's names load on first use, so start-up is torch's import, not pandas' and the
    experanto/NWB readers' (~0.5 s on 2 CPU cores), nor pyarrow (parquet output only), PIL
    (images and resizing only) and tomllib (config files only)."""
    import subprocess
    import sys

    code = (
        "import sys, cortexfm.cli, cortexfm.predict.run, cortexfm.data;"
        "from cortexfm.data import DataFormatError;"
        "from cortexfm.train import load_checkpoint;"
        "lazy = ('pandas', 'cortexfm.data.cohort', 'cortexfm.data.experanto', 'pyarrow', 'PIL',"
        " 'tomllib'); print([m for m in lazy if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
