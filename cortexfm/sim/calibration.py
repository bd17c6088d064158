"""Real-mouse references used to calibrate the simulator (read from ``../shared/data``).

Everything here has a built-in fallback so that the simulator also runs where the real tables
are absent (a user's fresh clone): the fallback values are summaries of the same tables.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

CELL_TYPES = ("23P", "4P", "5P-IT", "5P-ET", "5P-NP", "6P-IT", "6P-CT")

#: Fallback: MICrONS excitatory cell-type counts and median depths below pia (µm), from
#: nriedman_cells_no_repeats_excitatory_celltypes.csv (56,209 cells).
_FALLBACK_TYPES = {
    "23P": (17308, 195, 59),
    "4P": (12969, 331, 48),
    "5P-IT": (8576, 455, 63),
    "5P-ET": (1429, 514, 87),
    "5P-NP": (437, 535, 78),
    "6P-IT": (10076, 626, 60),
    "6P-CT": (5414, 647, 54),
}
#: Pia offset of the MICrONS volume's y axis (µm) used to turn soma y into depth.
_MICRONS_PIA_UM = 300.0


def shared_data_dir() -> Path | None:
    """``$CORTEXFM_SHARED_DATA`` or ``../shared/data`` beside the project, if present."""
    env = os.environ.get("CORTEXFM_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[3] / "shared" / "data")
    candidates.append(Path.cwd().parent / "shared" / "data")
    return next((c for c in candidates if c.is_dir()), None)


def sample_types_and_depths(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cell types and depths (µm below pia) drawn jointly from the MICrONS excitatory table."""
    root = shared_data_dir()
    path = (
        root / "real/microns/nriedman_cells_no_repeats_excitatory_celltypes.csv" if root else None
    )
    if path is not None and path.exists():
        import pandas as pd

        table = pd.read_csv(path, usecols=["cell_type", "pt_y"])
        pick = rng.integers(len(table), size=n)
        types = table.cell_type.to_numpy()[pick].astype(str)
        depth = table.pt_y.to_numpy()[pick] * 4 / 1000 - _MICRONS_PIA_UM
        return types, np.clip(depth, 50, 950)
    counts = np.array([v[0] for v in _FALLBACK_TYPES.values()], dtype=float)
    idx = rng.choice(len(CELL_TYPES), size=n, p=counts / counts.sum())
    types = np.array(CELL_TYPES)[idx]
    depth = np.array([rng.normal(_FALLBACK_TYPES[t][1], _FALLBACK_TYPES[t][2]) for t in types])
    return types, np.clip(depth, 50, 950)


def real_lateral_coordinates(mouse_index: int) -> np.ndarray | None:
    """Cortical (x, y) in µm of a real Sensorium 2023 mouse (mice A-J), if available."""
    root = shared_data_dir()
    if root is None:
        return None
    files = sorted(
        (root / "real/sensorium2023/derived_viv1t/neuron_coordinates").glob("mouse*.npy")
    )[:10]
    if not files:
        return None
    return np.load(files[mouse_index % len(files)])[:, :2].astype(np.float64)


def real_selectivity() -> dict[str, np.ndarray] | None:
    """Real gOSI/gDSI of mice B, C, E (8-direction drifting Gabors) and MICrONS scan 4-7."""
    root = shared_data_dir()
    if root is None:
        return None
    out: dict[str, np.ndarray] = {}
    tuning = root / "real/sensorium2023/derived_viv1t/tuning"
    osi, dsi = [], []
    for m in "BCE":
        if (tuning / f"mouse{m}" / "OSI.npy").exists():
            osi.append(np.load(tuning / f"mouse{m}" / "OSI.npy"))
            dsi.append(np.load(tuning / f"mouse{m}" / "DSI.npy"))
    if osi:
        out["sensorium_osi"], out["sensorium_dsi"] = np.concatenate(osi), np.concatenate(dsi)
    micro = root / "real/microns/lpiovan0_statstable_4_7_functional.csv"
    if micro.exists():
        import pandas as pd

        table = pd.read_csv(micro)
        out["microns_gosi"], out["microns_gdsi"] = table.gOSI.to_numpy(), table.gDSI.to_numpy()
    return out or None
