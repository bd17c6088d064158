"""Small synthetic sessions (random arrays in the real layouts) for tests and benchmarks:
Sensorium trees, and recordings on their own clocks written as NWB files or experanto folders.

The responses here carry no meaning; the ground-truth simulator lives in :mod:`cortexfm.sim`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml

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


RATE = 30.0  # display rate of the made-up stimulus, Hz


@dataclass
class TimedRecording:
    """A made-up recording on one clock, for the NWB and experanto readers' tests and benchmark.

    Trials of frames displayed at ~``RATE`` Hz (1 ms timestamp jitter, grey gaps between
    trials), two-photon traces at 6.3 Hz in imaging ``fields`` with their own clock offsets,
    pupil and eye camera at 20 Hz, treadmill at 100 Hz. ``hashes`` name each trial's clip
    (repeated hashes repeat the frames).
    """

    lengths: list[int]
    hashes: list[str]
    fields: list[int]
    field_offsets: list[float]
    frame_size: tuple[int, int]
    starts: list[float]
    stops: list[float]
    frames: np.ndarray  # [frames, height, width] uint8, all trials in display order
    frame_times: np.ndarray
    trace_times: list[np.ndarray]  # per field
    traces: list[np.ndarray]  # per field, [samples, neurons]
    eye_times: np.ndarray
    radius: np.ndarray
    eye_xy: np.ndarray
    tread_times: np.ndarray
    velocity: np.ndarray
    unit_ids: np.ndarray
    coords: np.ndarray

    @property
    def n_neurons(self) -> int:
        return sum(self.fields)


def make_timed_recording(
    lengths: Sequence[int],
    hashes: Sequence[str],
    *,
    fields: Sequence[int] = (3, 4),
    field_offsets: Sequence[float] = (0.0, 0.071),
    frame_size: tuple[int, int] = (9, 16),
    gap: float = 0.5,
    seed: int = 0,
) -> TimedRecording:
    rng = np.random.default_rng(seed)
    starts, stops, frames, times = [], [], [], []
    clips: dict[str, np.ndarray] = {}
    t = 1.0
    for n, h in zip(lengths, hashes, strict=True):
        clip = clips.setdefault(h, rng.integers(0, 256, size=(n, *frame_size), dtype=np.uint8))
        jitter = rng.uniform(-0.001, 0.001, size=n)
        jitter[0] = 0.0
        starts.append(t)
        times.append(t + np.arange(n) / RATE + jitter)
        frames.append(clip)
        t += n / RATE
        stops.append(t)
        t += gap
    end = t + 1.0
    scan = np.arange(0.0, end, 1 / 6.3)
    traces = [rng.gamma(0.5, 1.0, size=(len(scan), k)).astype(np.float32) for k in fields]
    eye_times = np.arange(0.0, end, 1 / 20)
    tread_times = np.arange(0.0, end, 1 / 100)
    n_neurons = sum(fields)
    return TimedRecording(
        lengths=list(lengths),
        hashes=[str(h) for h in hashes],
        fields=list(fields),
        field_offsets=list(field_offsets),
        frame_size=frame_size,
        starts=starts,
        stops=stops,
        frames=np.concatenate(frames),
        frame_times=np.concatenate(times),
        trace_times=[scan + off for off in field_offsets],
        traces=traces,
        eye_times=eye_times,
        radius=(20 + rng.normal(size=len(eye_times))).astype(np.float32),
        eye_xy=rng.normal(size=(len(eye_times), 2)).astype(np.float32),
        tread_times=tread_times,
        velocity=np.abs(rng.normal(size=len(tread_times))).astype(np.float32),
        unit_ids=np.arange(101, 101 + n_neurons),
        coords=rng.uniform(0, 500, size=(n_neurons, 3)).round(),
    )


def write_timed_nwb(
    rec: TimedRecording, path: Path, *, truncate_traces: bool = False, positions: bool = True
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
    for f, k in enumerate(rec.fields, start=1):
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
            mask = np.zeros((8, k + 1), dtype=np.float32)
            mask[j % 8, j + 1] = 1.0  # row j % 8, column j + 1
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
    for k, h in enumerate(rec.hashes):
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


def write_timed_experanto(rec: TimedRecording, path: Path, tiers: Sequence[str]) -> Path:
    """The experanto layout: screen trials (video + blank between), sequences on their clocks."""
    screen = path / "screen"
    (screen / "data").mkdir(parents=True)
    (screen / "meta").mkdir()
    (screen / "meta.yml").write_text(yaml.safe_dump({"modality": "screen"}))
    times, offset, index, trial = [], 0, 0, 0
    for k, n in enumerate(rec.lengths):
        name = f"{trial:05d}"
        np.save(screen / "data" / f"{name}.npy", rec.frames[offset : offset + n])
        meta = {
            "modality": "video",
            "first_frame_idx": index,
            "num_frames": n,
            "image_size": list(rec.frame_size),
            "tier": tiers[k],
            "condition_hash": rec.hashes[k],
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
                    "image_size": list(rec.frame_size),
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
    phase = np.repeat(rec.field_offsets, rec.fields)
    folder = sequence("responses", responses, 6.3, 0.0, True, phase)
    np.save(folder / "meta" / "unit_ids.npy", rec.unit_ids)
    np.save(folder / "meta" / "cell_motor_coordinates.npy", rec.coords)
    eye = np.column_stack([rec.eye_xy, rec.radius])
    sequence("eye_tracker", eye, 20.0, 0.0, False)
    sequence("treadmill", rec.velocity[:, None], 100.0, 0.0, False)
    return path
