"""NWB and experanto sessions equal the same session written as a Sensorium tree.

One continuous "recording" is made up: trials of frames displayed at ~30 Hz (with timestamp
jitter and grey gaps between trials), two-photon traces at 6.3 Hz whose imaging fields (NWB) or
neurons (experanto) have their own clock offsets, pupil and eye camera at 20 Hz, treadmill at
100 Hz, NaN gaps in some traces. It is written with pynwb (the MICrONS layout) and as an
experanto folder; the expected Sensorium tree holds each signal interpolated at the frame
times with ``np.interp`` (the documented method), computed independently of the readers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from cortexfm.data import open_cohort, open_session
from cortexfm.data.errors import DataFormatError
from cortexfm.data.writer import SessionWriter

pynwb = pytest.importorskip("pynwb", reason="pynwb (the nwb extra) is not installed")

RATE = 30.0
LENGTHS = [45, 60, 50, 45, 45, 45, 45]
HASHES = ["c0", "c1", "c2", "r0", "r1", "r0", "r1"]  # r0 and r1 repeat: oracle
GAP = 0.5  # grey seconds between trials
FIELDS = [3, 4]  # neurons per imaging field
FIELD_OFFSETS = [0.0, 0.071]  # scan phase of each field (NWB); experanto: one per neuron
SIZE = (9, 16)


class Recording:
    """The made-up recording on one clock, and what cortexfm should read from it."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.starts, self.stops, frames, times = [], [], [], []
        clips: dict[str, np.ndarray] = {}
        t = 1.0
        for n, h in zip(LENGTHS, HASHES, strict=True):
            clip = clips.setdefault(h, rng.integers(0, 256, size=(n, *SIZE)).astype(np.uint8))
            jitter = rng.uniform(-0.001, 0.001, size=n)
            jitter[0] = 0.0
            self.starts.append(t)
            times.append(t + np.arange(n) / RATE + jitter)
            frames.append(clip)
            t += n / RATE
            self.stops.append(t)
            t += GAP
        self.frames = np.concatenate(frames)
        self.frame_times = np.concatenate(times)
        self.end = t + 1.0
        self.n_neurons = sum(FIELDS)
        scan = np.arange(0.0, self.end, 1 / 6.3)
        self.trace_times = [scan + off for off in FIELD_OFFSETS]
        self.traces = [rng.gamma(0.5, 1.0, size=(len(scan), k)).astype(np.float32) for k in FIELDS]
        self.traces[1][40, 2] = np.nan  # a motion-corrupted sample: a NaN gap
        self.eye_times = np.arange(0.0, self.end, 1 / 20)
        self.radius = (20 + rng.normal(size=len(self.eye_times))).astype(np.float32)
        self.eye_xy = rng.normal(size=(len(self.eye_times), 2)).astype(np.float32)
        self.tread_times = np.arange(0.0, self.end, 1 / 100)
        self.velocity = np.abs(rng.normal(size=len(self.tread_times))).astype(np.float32)
        self.unit_ids = np.arange(101, 101 + self.n_neurons)
        self.coords = rng.uniform(0, 500, size=(self.n_neurons, 3)).round()

    def expected_tree(self, path: Path, tiers: list[str], stimulus_type: str) -> Path:
        """The Sensorium tree cortexfm should see (``np.interp`` at the frame grid)."""
        writer = SessionWriter(
            path, session_id=path.name, unit_ids=self.unit_ids, coordinates=self.coords
        )
        offset = 0
        with writer:
            for k, n in enumerate(LENGTHS):
                grid = self.starts[k] + np.arange(n) / RATE
                video = self.frames[offset : offset + n].astype(np.float32)
                offset += n
                responses = np.concatenate(
                    [
                        np.stack(
                            [np.interp(grid, tt, tr[:, j]) for j in range(tr.shape[1])], axis=1
                        )
                        for tt, tr in zip(self.trace_times, self.traces, strict=True)
                    ],
                    axis=1,
                )
                behavior = np.stack(
                    [
                        np.interp(grid, self.eye_times, self.radius),
                        np.interp(grid, self.tread_times, self.velocity),
                    ],
                    axis=1,
                )
                center = np.stack(
                    [np.interp(grid, self.eye_times, self.eye_xy[:, j]) for j in range(2)],
                    axis=1,
                )
                writer.add_trial(
                    video=video,
                    responses=responses.astype(np.float32),
                    behavior=behavior.astype(np.float32),
                    pupil_center=center.astype(np.float32),
                    tier=tiers[k],
                    video_id=HASHES[k],
                    stimulus_type=stimulus_type,
                )
        return path


def write_nwb(
    rec: Recording, path: Path, *, truncate_traces: bool = False, positions: bool = True
) -> Path:
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.behavior import EyeTracking, PupilTracking, SpatialSeries
    from pynwb.epoch import TimeIntervals
    from pynwb.image import ImageSeries
    from pynwb.ophys import Fluorescence, ImageSegmentation, OpticalChannel

    nwb = NWBFile(
        session_description="made-up MICrONS-like scan",
        identifier="test",
        session_start_time=datetime(2018, 3, 4, tzinfo=UTC),
        session_id="scan",
    )
    nwb.add_acquisition(
        ImageSeries(
            name="Video_stimulus_test", data=rec.frames, unit="n.a.", timestamps=rec.frame_times
        )
    )
    nwb.add_acquisition(
        TimeSeries(
            name="treadmill_velocity", data=rec.velocity, unit="cm/s", timestamps=rec.tread_times
        )
    )
    nwb.add_acquisition(
        PupilTracking(
            time_series=[
                TimeSeries(
                    name="pupil_major_radius",
                    data=rec.radius,
                    unit="px",
                    timestamps=rec.eye_times,
                ),
                TimeSeries(
                    name="pupil_minor_radius",
                    data=rec.radius * 0.9,
                    unit="px",
                    timestamps=rec.eye_times,
                ),
            ]
        )
    )
    nwb.add_acquisition(
        EyeTracking(
            spatial_series=SpatialSeries(
                name="eye_position",
                data=rec.eye_xy,
                reference_frame="eye camera",
                timestamps=rec.eye_times,
            )
        )
    )
    device = nwb.create_device(name="Microscope")
    ophys = nwb.create_processing_module(name="ophys", description="processed 2p data")
    segmentation = ImageSegmentation()
    ophys.add(segmentation)
    fluorescence = Fluorescence()
    ophys.add(fluorescence)
    first = 0
    for f, k in enumerate(FIELDS, start=1):
        plane = nwb.create_imaging_plane(
            name=f"ImagingPlane{f}",
            optical_channel=OpticalChannel(
                name="OpticalChannel", description="green", emission_lambda=500.0
            ),
            description=f"field {f}",
            device=device,
            excitation_lambda=920.0,
            indicator="GCaMP6s",
            location="VISp",
            imaging_rate=6.3,
            grid_spacing=[2e-6, 2e-6],
            origin_coords=[1e-4, 2e-4, 3e-4 * f],
        )
        seg = segmentation.create_plane_segmentation(
            name=f"PlaneSegmentation{f}", description="rois", imaging_plane=plane
        )
        for column in ("unit_id", "x", "y", "z") if positions else ("unit_id",):
            seg.add_column(name=column, description=column)
        for j in range(k):
            mask = np.zeros((8, 8), dtype=np.float32)
            mask[j, j + 1] = 1.0  # row j, column j + 1
            n = first + j
            xyz = dict(zip("xyz", rec.coords[n], strict=True)) if positions else {}
            seg.add_roi(image_mask=mask, unit_id=int(rec.unit_ids[n]), **xyz)
        region = seg.create_roi_table_region(description="all rois", region=list(range(k)))
        data, times = rec.traces[f - 1], rec.trace_times[f - 1]
        if truncate_traces and f == 2:
            keep = times < rec.stops[-1] - 0.5
            data, times = data[keep], times[keep]
        fluorescence.create_roi_response_series(
            name=f"RoiResponseSeries{f}", data=data, rois=region, unit="a.u.", timestamps=times
        )
        first += k
    clip = TimeIntervals(name="Clip", description="natural movie clips")
    clip.add_column(name="condition_hash", description="clip id")
    clip.add_column(name="stimulus_type", description="type")
    clip.add_column(name="movie_name", description="source")
    for k, h in enumerate(HASHES):
        clip.add_row(
            start_time=rec.starts[k],
            stop_time=rec.stops[k],
            condition_hash=h,
            stimulus_type="stimulus.Clip",
            movie_name=f"movie-{h}",
        )
    nwb.add_time_intervals(clip)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def write_experanto(rec: Recording, path: Path, tiers: list[str], *, shifts=None) -> Path:
    """The experanto layout: screen trials (video + blank between), sequences on their clocks."""
    screen = path / "screen"
    (screen / "data").mkdir(parents=True)
    (screen / "meta").mkdir()
    (screen / "meta.yml").write_text(yaml.safe_dump({"modality": "screen"}))
    times, offset, index, trial = [], 0, 0, 0
    for k, n in enumerate(LENGTHS):
        name = f"{trial:05d}"
        np.save(screen / "data" / f"{name}.npy", rec.frames[offset : offset + n])
        meta = {
            "modality": "video",
            "first_frame_idx": index,
            "num_frames": n,
            "image_size": list(SIZE),
            "tier": tiers[k],
            "condition_hash": HASHES[k],
            "stimulus_type": "natural_movie",
        }
        (screen / "meta" / f"{name}.yml").write_text(yaml.safe_dump(meta))
        times.append(rec.frame_times[offset : offset + n])
        offset, index, trial = offset + n, index + n, trial + 1
        blank = f"{trial:05d}"  # the grey gap: one blank frame at the trial's stop
        (screen / "meta" / f"{blank}.yml").write_text(
            yaml.safe_dump(
                {
                    "modality": "blank",
                    "first_frame_idx": index,
                    "num_frames": 1,
                    "image_size": list(SIZE),
                    "interleave_value": 128,
                }
            )
        )
        times.append(np.array([rec.stops[k]]))
        index, trial = index + 1, trial + 1
    np.save(screen / "timestamps.npy", np.concatenate(times))

    def sequence(name: str, data: np.ndarray, rate: float, start: float, memmap: bool, phase=None):
        folder = path / name
        (folder / "meta").mkdir(parents=True)
        meta = {
            "modality": "sequence",
            "sampling_rate": rate,
            "start_time": start,
            "end_time": start + (len(data) - 1) / rate,
            "n_signals": data.shape[1],
            "n_timestamps": len(data),
            "dtype": "float32",
            "is_mem_mapped": memmap,
        }
        if memmap:
            data.astype(np.float32).tofile(folder / "data.mem")
        else:
            np.save(folder / "data.npy", data.astype(np.float32))
        if phase is not None:
            np.save(folder / "meta" / "phase_shifts.npy", phase)
        (folder / "meta.yml").write_text(yaml.safe_dump(meta))
        return folder

    responses = np.concatenate(rec.traces, axis=1)
    phase = np.repeat(FIELD_OFFSETS, FIELDS) if shifts is None else shifts
    folder = sequence("responses", responses, 6.3, 0.0, True, phase)
    np.save(folder / "meta" / "unit_ids.npy", rec.unit_ids)
    np.save(folder / "meta" / "cell_motor_coordinates.npy", rec.coords)
    eye = np.column_stack([rec.eye_xy, rec.radius])
    sequence("eye_tracker", eye, 20.0, 0.0, False)
    sequence("treadmill", rec.velocity[:, None], 100.0, 0.0, False)
    return path


def assert_same_session(session, tree) -> None:
    assert session.n_trials == tree.n_trials
    np.testing.assert_array_equal(session.trial_lengths, tree.trial_lengths)
    np.testing.assert_array_equal(session.tiers, tree.tiers)
    np.testing.assert_array_equal(session.video_ids, tree.video_ids)
    np.testing.assert_array_equal(session.repeats, tree.repeats)
    np.testing.assert_array_equal(session.unit_ids, tree.unit_ids)
    np.testing.assert_allclose(session.coordinates, tree.coordinates)
    assert session.frame_size == tree.frame_size
    for k in range(tree.n_trials):
        for modality in ("video", "responses", "behavior", "pupil_center"):
            np.testing.assert_allclose(
                session.read(k, modality),
                tree.read(k, modality),
                rtol=1e-6,
                atol=1e-6,
                err_msg=f"trial {k} {modality}",
            )
        window = session.window(k, 7, 20)
        np.testing.assert_allclose(
            window["responses"], tree.window(k, 7, 20)["responses"], rtol=1e-6, atol=1e-6
        )


NWB_TIERS = ["train", "train", "train", "oracle", "oracle", "oracle", "oracle"]


def test_nwb_session_equals_its_sensorium_tree(tmp_path):
    rec = Recording()
    nwb = open_session(write_nwb(rec, tmp_path / "scan.nwb"))
    tree = open_session(rec.expected_tree(tmp_path / "tree", NWB_TIERS, "stimulus.Clip"))
    assert nwb.layout == "nwb" and nwb.session_id == "scan"
    assert_same_session(nwb, tree)
    assert any(np.isnan(nwb.read(k, "responses")).any() for k in range(nwb.n_trials)), (
        "the NaN sample must stay a gap in the responses"
    )
    assert set(nwb.stimulus_types) == {"stimulus.Clip"}
    cohort = open_cohort(tmp_path)  # a folder holding an .nwb file and a tree
    assert sorted(s.layout for s in cohort) == ["nwb", "sensorium2023"]


def test_nwb_positions_from_the_roi_masks(tmp_path):
    """Without x, y, z columns a unit sits at its mask's centroid, in µm on the imaging plane
    (grid spacing 2 µm, origin (100, 200, 300 x field) µm)."""
    session = open_session(write_nwb(Recording(), tmp_path / "s.nwb", positions=False))
    j = np.concatenate([np.arange(k) for k in FIELDS])
    field = np.repeat([1, 2], FIELDS)
    expected = np.column_stack([100 + 2.0 * (j + 1), 200 + 2.0 * j, 300.0 * field])
    np.testing.assert_allclose(session.coordinates, expected)


def test_nwb_truncated_recording_names_file_and_field(tmp_path):
    path = write_nwb(Recording(), tmp_path / "cut.nwb", truncate_traces=True)
    with pytest.raises(DataFormatError, match=r"cut\.nwb.*RoiResponseSeries2.*truncated"):
        open_session(path)


def test_nwb_not_an_nwb_file(tmp_path):
    bad = tmp_path / "broken.nwb"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(DataFormatError, match="broken.nwb.*not a readable NWB file"):
        open_session(bad)


def test_experanto_session_equals_its_sensorium_tree(tmp_path):
    rec = Recording(seed=1)
    exp = open_session(write_experanto(rec, tmp_path / "exp", NWB_TIERS))
    tree = open_session(rec.expected_tree(tmp_path / "tree", NWB_TIERS, "natural_movie"))
    assert exp.layout == "experanto"
    assert_same_session(exp, tree)
    assert not any((tmp_path / "exp").rglob("combined_meta.json")), "nothing written there"


def test_experanto_truncated_memmap_names_file_and_field(tmp_path):
    path = write_experanto(Recording(), tmp_path / "exp", NWB_TIERS)
    data = path / "responses" / "data.mem"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(DataFormatError, match=r"data\.mem.*n_timestamps.*truncated"):
        open_session(path)


def test_experanto_unknown_tier_names_the_trial_file(tmp_path):
    path = write_experanto(Recording(), tmp_path / "exp", ["practice"] + NWB_TIERS[1:])
    with pytest.raises(DataFormatError, match=r"00000\.yml.*tier 'practice'"):
        open_session(path)


def test_every_command_reads_both_formats(tmp_path, capsys):
    """validate names each format; train, evaluate and predict run on a folder holding an NWB
    file and an experanto folder, as they do on Sensorium trees."""
    from cortexfm.cli import main
    from tests.conftest import TINY_TRAINING

    cohort = tmp_path / "cohort"
    cohort.mkdir()
    write_nwb(Recording(), cohort / "scan.nwb")
    write_experanto(Recording(seed=1), cohort / "exp", NWB_TIERS)
    assert main(["validate", str(cohort)]) == 0
    text = capsys.readouterr().out
    assert "(NWB file)" in text and "(experanto folder)" in text and "2/2 session(s) valid" in text
    assert "responses from /processing/ophys/Fluorescence" in text
    run = tmp_path / "run"
    args = ["train", "--data", str(cohort), "--preset", "tiny", "--out", str(run)]
    assert main([*args, *TINY_TRAINING, "train.position_search_steps=[]"]) == 0
    checkpoint = run / "best.safetensors"
    assert (
        main(["evaluate", str(checkpoint), "--data", str(cohort), "--out", str(tmp_path / "e")])
        == 0
    )
    out = tmp_path / "p.npy"
    movie = tmp_path / "movie.npy"
    np.save(movie, np.random.default_rng(0).uniform(0, 255, size=(40, *SIZE)).astype(np.float32))
    assert (
        main(["predict", str(checkpoint), str(movie), "--session", "scan", "--out", str(out)]) == 0
    )
    assert np.load(out).shape == (40, sum(FIELDS))
    assert not any(
        p.name.startswith(".") or p.suffix == ".json" for p in (cohort / "exp").rglob("*")
    )
