"""Importing MICrONS-style tables (CSV, parquet or feather) and joining them with a report.

- cell types: unit (or nucleus / segment id) -> cell type;
- morphology: id -> continuous features (dendritic length, branch counts, ...);
- connections: pre, post, synapse count.

Every join returns a :class:`JoinReport`: how many rows matched and which keys had no partner,
so a user sees at once whether two tables speak about the same neurons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cortexfm.data.errors import DataFormatError


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV, parquet or feather table; clear errors for missing or unreadable files."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "table file does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".feather", ".arrow"):
            return pd.read_feather(path)
        if suffix in (".csv", ".tsv", ".txt"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except Exception as err:  # pandas/pyarrow raise many types for a corrupt file
        raise DataFormatError(path, f"cannot be read as a {suffix[1:]} table ({err})") from None
    raise DataFormatError(path, f"unknown table format {suffix!r}: use .csv, .parquet or .feather")


def _require(table: pd.DataFrame, columns: list[str], path: str | Path) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataFormatError(
            Path(path), f"column(s) {missing} not found; the table has {list(table.columns)[:20]}"
        )


def import_cell_types(
    path: str | Path, id_column: str, type_column: str = "cell_type"
) -> pd.DataFrame:
    """``id, cell_type`` rows (duplicates of an id with conflicting types are dropped)."""
    table = read_table(path)
    _require(table, [id_column, type_column], path)
    out = (
        table[[id_column, type_column]]
        .dropna()
        .rename(columns={id_column: "id", type_column: "cell_type"})
    )
    conflicting = out.groupby("id").cell_type.nunique()
    out = out[~out.id.isin(conflicting[conflicting > 1].index)].drop_duplicates("id")
    return out.reset_index(drop=True)


def import_morphology(
    path: str | Path, id_column: str, features: list[str] | None = None
) -> pd.DataFrame:
    """``id`` plus numeric feature columns (all numeric columns unless ``features`` given)."""
    table = read_table(path)
    _require(table, [id_column, *(features or [])], path)
    if features is None:
        features = [
            c
            for c in table.columns
            if c != id_column
            and pd.api.types.is_numeric_dtype(table[c])
            and not pd.api.types.is_bool_dtype(table[c])
        ]
    out = table[[id_column, *features]].rename(columns={id_column: "id"})
    return out.drop_duplicates("id").reset_index(drop=True)


def import_connections(
    path: str | Path, pre: str = "pre", post: str = "post", synapses: str | None = "synapse_count"
) -> pd.DataFrame:
    """``pre, post, synapse_count`` (one row per connected pair; synapse counts summed)."""
    table = read_table(path)
    _require(table, [pre, post] + ([synapses] if synapses else []), path)
    out = pd.DataFrame({"pre": table[pre], "post": table[post]})
    out["synapse_count"] = table[synapses] if synapses else 1
    return out.groupby(["pre", "post"], as_index=False).synapse_count.sum()


@dataclass
class JoinReport:
    left_rows: int
    right_rows: int
    matched: int
    unmatched_left: int  # left keys with no partner on the right
    unmatched_right: int
    examples_unmatched_left: list = field(default_factory=list)  # first 20
    examples_unmatched_right: list = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"matched {self.matched} rows ({self.left_rows} left, {self.right_rows} right); "
            f"{self.unmatched_left} left keys unmatched (e.g. {self.examples_unmatched_left[:3]}), "
            f"{self.unmatched_right} right keys unmatched (e.g. {self.examples_unmatched_right[:3]})"
        )


def join(
    left: pd.DataFrame, right: pd.DataFrame, left_key: str, right_key: str
) -> tuple[pd.DataFrame, JoinReport]:
    """Inner join with a report of what matched."""
    lk, rk = left[left_key], right[right_key]
    joined = left.merge(
        right, left_on=left_key, right_on=right_key, how="inner", suffixes=("", "_right")
    )
    report = JoinReport(
        left_rows=len(left),
        right_rows=len(right),
        matched=len(joined),
        unmatched_left=int((~lk.isin(rk)).sum()),
        unmatched_right=int((~rk.isin(lk)).sum()),
        examples_unmatched_left=lk[~lk.isin(rk)].head(20).tolist(),
        examples_unmatched_right=rk[~rk.isin(lk)].head(20).tolist(),
    )
    return joined, report
