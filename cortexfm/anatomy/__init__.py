"""Functional barcodes and anatomy: cell types, morphology features, connectivity."""

from cortexfm.anatomy.analysis import classify, connectivity_scores, pair_table, regress
from cortexfm.anatomy.barcodes import export_barcodes
from cortexfm.anatomy.tables import (
    import_cell_types,
    import_connections,
    import_morphology,
    join,
    read_table,
)

__all__ = [
    "classify",
    "connectivity_scores",
    "export_barcodes",
    "import_cell_types",
    "import_connections",
    "import_morphology",
    "join",
    "pair_table",
    "read_table",
    "regress",
]
