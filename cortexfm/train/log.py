"""What a training run reports after each epoch: a ``metrics.jsonl`` line, optional TensorBoard
scalars, and one progress line."""

from __future__ import annotations

import json
from pathlib import Path


class TrainingLog:
    """Appends one JSON record per epoch to ``<out_dir>/metrics.jsonl`` (and TensorBoard when
    asked and installed); ``enabled=False`` (non-main distributed ranks) writes nothing."""

    SCALARS = ("loss", "lr", "frames_per_s", "validation_correlation")

    def __init__(self, out_dir: Path, *, tensorboard: bool = False, enabled: bool = True) -> None:
        self.path = out_dir / "metrics.jsonl"
        self.enabled = enabled
        self.writer = _tensorboard(out_dir) if tensorboard and enabled else None

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key in self.SCALARS:
                self.writer.add_scalar(key, record[key], record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def progress_line(record: dict, validated: bool) -> str:
    """``step N: loss L, validation r R, F frames/s[, G NaN response values masked]``."""
    score = f"validation r {record['validation_correlation']:.4f}" if validated else "no validation"
    masked = record["masked_responses"]
    gaps = f", {masked} NaN response values masked" if masked else ""
    return (
        f"step {record['step']}: loss {record['loss']:.4f}, {score}, "
        f"{record['frames_per_s']:.0f} frames/s{gaps}"
    )


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print(
            "tensorboard is not installed (pip install tensorboard); logging to metrics.jsonl only"
        )
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))
