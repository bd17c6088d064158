"""Simulated mice written as Sensorium 2023 trees, with their ground truth.

Per mouse (``simulate_mouse``):

- ``train`` and ``validation`` trials: unique ~10 s natural movie clips;
- ``oracle`` trials: a few natural clips, each shown ``repeats`` times (fresh behaviour and
  noise every time) in shuffled order, for noise ceilings;
- ``final_test_bonus`` trials: one block per out-of-distribution family (drifting Gabors,
  Gaussian dots, random-dot kinematograms, directional pink noise, static images), each clip
  shown ``repeats`` times; ``meta/trials/stimulus_type.npy`` names the family;
- ground truth in ``meta/ground_truth/``: ``neurons.parquet`` (every parameter of every
  neuron plus its measured tuning), ``connections.csv`` (pre, post, synapse_count, indices
  into the neuron table) and ``simulation.json`` (the settings, to rebuild the simulator).

Trials stream to disk one at a time, so memory stays bounded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cortexfm.data.writer import SessionWriter
from cortexfm.sim.behavior import EYE_PX_PER_DEG, simulate_behavior
from cortexfm.sim.connectivity import sample_connections
from cortexfm.sim.population import Population, sample_population
from cortexfm.sim.response import NoiseConfig, ResponseModel
from cortexfm.sim.subunit import GENERATORS, make_response_model, subunit_parameters
from cortexfm.sim.tuning import ground_truth_tuning
from cortexfm.stimuli import OOD_FAMILIES, Monitor, load_images, natural_movie, ood_clip


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate for each mouse."""

    n_neurons: int = 1000
    train_minutes: float = 20.0
    clip_seconds: float = 10.0
    validation_fraction: float = 0.1
    oracle_clips: int = 4
    repeats: int = 10
    ood_clips: int = 1  # per family
    ood_families: tuple[str, ...] = OOD_FAMILIES
    image_folder: str | None = None  # real images for natural movies (else dead leaves)
    monitor: Monitor = field(default_factory=Monitor)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    # the response generator: "gabor" (Gabor energy model, cortexfm.sim.response) or
    # "subunit" (LGN subunit cascade with contrast gain control, cortexfm.sim.subunit)
    generator: str = "gabor"
    lgn_c50: float = 0.15  # subunit generator: LGN contrast semi-saturation (large: linear)
    # ablations (what a twin must model): eye movements, and behaviour's gain on responses
    eye_movements: bool = True  # False: gaze fixed at the centre (camera noise only)
    behavioral_gain: bool = True  # False: running and pupil leave the rates unchanged

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise ValueError(
                f"unknown response generator {self.generator!r}; known: {sorted(GENERATORS)}"
            )
        if self.n_neurons < 1:
            raise ValueError(f"n_neurons must be >= 1, got {self.n_neurons}")
        if self.train_minutes <= 0 or self.clip_seconds <= 0:
            raise ValueError(
                f"train_minutes and clip_seconds must be > 0, got {self.train_minutes}, {self.clip_seconds}"
            )
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction}"
            )
        if self.image_folder is not None:  # a Path too (the config is written as JSON)
            object.__setattr__(self, "image_folder", str(self.image_folder))
        if self.oracle_clips < 0 or self.repeats < 1 or self.ood_clips < 0:
            raise ValueError("oracle_clips and ood_clips must be >= 0, repeats >= 1")
        unknown = set(self.ood_families) - set(OOD_FAMILIES)
        if unknown:
            raise ValueError(f"unknown stimulus families {sorted(unknown)}; known: {OOD_FAMILIES}")

    def to_json(self) -> dict:
        d = asdict(self)
        d["ood_families"] = list(self.ood_families)
        return d

    @classmethod
    def from_json(cls, d: dict) -> SimulationConfig:
        d = dict(d)
        d["monitor"] = Monitor(**d["monitor"])
        d["noise"] = NoiseConfig(**d["noise"])
        d["ood_families"] = tuple(d["ood_families"])
        return cls(**d)


def _trial_plan(config: SimulationConfig, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """(tier, stimulus_type, clip id) per trial, in presentation order."""
    n_train = max(1, int(round(config.train_minutes * 60 / config.clip_seconds)))
    n_val = (
        max(1, int(round(n_train * config.validation_fraction)))
        if config.validation_fraction > 0
        else 0
    )
    plan = [("train", "natural_movie", f"nat-train-{i}") for i in range(n_train)]
    plan += [("validation", "natural_movie", f"nat-val-{i}") for i in range(n_val)]
    tests = [
        ("oracle", "natural_movie", f"nat-oracle-{c}")
        for c in range(config.oracle_clips)
        for _ in range(config.repeats)
    ]
    tests += [
        ("final_test_bonus", fam, f"{fam}-{c}")
        for fam in config.ood_families
        for c in range(config.ood_clips)
        for _ in range(config.repeats)
    ]
    order = rng.permutation(len(tests))
    return plan + [tests[i] for i in order]


def simulate_mouse(
    path: str | Path,
    config: SimulationConfig,
    *,
    seed: int = 0,
    mouse_index: int = 0,
    mouse_id: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Simulate one mouse and write it (with ground truth) as a Sensorium 2023 tree."""
    mouse_id = mouse_id or f"sim-mouse{mouse_index}"
    rng = np.random.default_rng([seed, mouse_index])
    monitor = config.monitor
    population = sample_population(config.n_neurons, rng, monitor, mouse_index, mouse_id)
    if config.generator == "subunit":  # its own stream: the shared parameters stay the same
        population = subunit_parameters(
            population, np.random.default_rng([seed, mouse_index, 2]), config.lgn_c50
        )
    if not config.behavioral_gain:  # recorded in the ground truth as zero gains
        population.table["running_gain"] = 0.0
        population.table["pupil_gain"] = 0.0
    model = make_response_model(config.generator, population, monitor, config.noise)
    images = load_images(config.image_folder) if config.image_folder else None
    clip_frames = monitor.frames(config.clip_seconds)
    plan = _trial_plan(config, rng)
    stimuli: dict[str, np.ndarray] = {}
    table = population.table
    writer = SessionWriter(
        path,
        session_id=f"{mouse_id}-s0",
        mouse_id=mouse_id,
        unit_ids=table.unit_id.to_numpy(),
        coordinates=table[["x", "y", "z"]].to_numpy(),
        frame_rate=monitor.frame_rate,
        neuron_extensions={k: table[k].to_numpy() for k in ("area", "layer", "cell_type")},
        overwrite=overwrite,
        extra_info={
            "simulated": True,
            "seed": seed,
            "mouse_index": mouse_index,
            "generator": config.generator,
        },
    )
    similarity_rates: list[np.ndarray] = []
    n_clips = 0  # clips generated so far: each new clip gets its own random stream
    with writer:
        for tier, stimulus_type, clip in tqdm(
            plan, desc=f"simulating {mouse_id}", disable=not progress, unit="trial"
        ):
            if clip not in stimuli:
                clip_rng = np.random.default_rng([seed, mouse_index, n_clips, 1])
                n_clips += 1
                if stimulus_type == "natural_movie":
                    stimuli[clip] = natural_movie(
                        monitor, clip_frames, clip_rng, images, clip_id=clip
                    ).frames
                else:
                    stimuli[clip] = ood_clip(stimulus_type, monitor, clip_frames, clip_rng).frames
            frames = (
                stimuli[clip] if tier != "train" and tier != "validation" else stimuli.pop(clip)
            )
            behavior, gaze, pupil_center = simulate_behavior(len(frames), rng, monitor.frame_rate)
            if not config.eye_movements:  # the same random draws, the eye held still
                pupil_center = pupil_center - EYE_PX_PER_DEG * gaze.astype(np.float32)
                gaze = np.zeros_like(gaze)
            responses, rates = model.responses(frames, behavior, gaze, rng)
            if tier == "train" and len(similarity_rates) < 30:
                similarity_rates.append(rates[::3])
            writer.add_trial(
                video=frames,
                responses=responses,
                behavior=behavior,
                pupil_center=pupil_center,
                tier=tier,
                stimulus_type=stimulus_type,
                video_id=clip,
            )
        truth = pd.concat([table, ground_truth_tuning(model)], axis=1)
        connections = sample_connections(
            np.concatenate(similarity_rates), table[["x", "y", "z"]].to_numpy(), rng
        )
        gt = writer.meta_dir("ground_truth")
        truth.to_parquet(gt / "neurons.parquet", index=False)
        connections.to_csv(gt / "connections.csv", index=False)
        (gt / "simulation.json").write_text(
            json.dumps(
                {
                    "config": config.to_json(),
                    "seed": seed,
                    "mouse_index": mouse_index,
                    "mouse_id": mouse_id,
                },
                indent=2,
            )
        )
    return Path(path)


def load_ground_truth(session_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ground-truth neuron table and connection list of a simulated session."""
    gt = Path(session_path) / "meta" / "ground_truth"
    if not (gt / "neurons.parquet").exists():
        raise FileNotFoundError(f"{gt}: no ground truth (not a simulated session?)")
    return pd.read_parquet(gt / "neurons.parquet"), pd.read_csv(gt / "connections.csv")


def rebuild_simulator(session_path: str | Path) -> ResponseModel:
    """The exact response model of a simulated session (for closing the loop in silico)."""
    gt = Path(session_path) / "meta" / "ground_truth"
    info = json.loads((gt / "simulation.json").read_text())
    config = SimulationConfig.from_json(info["config"])
    table = pd.read_parquet(gt / "neurons.parquet")  # extra ground-truth columns are ignored
    population = Population(table, info["mouse_id"])
    return make_response_model(config.generator, population, config.monitor, config.noise)


def simulate_cohort(
    out: str | Path,
    n_mice: int,
    config: SimulationConfig,
    *,
    seed: int = 0,
    first_mouse: int = 0,
    progress: bool = True,
    generators: list[str] | None = None,
) -> list[Path]:
    """``n_mice`` mice under ``out/mouse<i>``, i = ``first_mouse``, ``first_mouse + 1``, ...;
    finished mice are kept (resumable). Mice are numbered across cohorts: with the same seed,
    ``first_mouse=4`` gives new animals for a foundation trained on mice 0-3 (held-out mice).

    ``generators`` picks the response generator per mouse (cycled: ``["gabor", "subunit"]``
    alternates); by default every mouse uses ``config.generator``."""
    if n_mice < 1:
        raise ValueError(f"n_mice must be >= 1, got {n_mice}")
    if first_mouse < 0:
        raise ValueError(f"first_mouse must be >= 0, got {first_mouse}")
    paths = []
    for i, m in enumerate(range(first_mouse, first_mouse + n_mice)):
        path = Path(out) / f"mouse{m}"
        mouse_config = (
            replace(config, generator=generators[i % len(generators)]) if generators else config
        )
        if not (path / "meta" / "ground_truth" / "simulation.json").exists():
            simulate_mouse(
                path,
                mouse_config,
                seed=seed,
                mouse_index=m,
                overwrite=path.exists(),
                progress=progress,
            )
        paths.append(path)
    return paths
