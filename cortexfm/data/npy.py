"""Reading ``.npy`` files safely: headers without data, memory maps, clear errors.

Everything here raises :class:`~cortexfm.data.errors.DataFormatError` naming the file, never
a bare numpy traceback. Pickled (object) arrays are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cortexfm.data.errors import DataFormatError


@dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` header says about its array."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool


def read_header(path: Path) -> NpyHeader:
    """Read only the header of ``path`` and check that the file holds the whole array."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
    except FileNotFoundError:
        raise DataFormatError(path, "file is missing") from None
    except (ValueError, OSError, SyntaxError) as err:
        raise DataFormatError(path, f"unreadable .npy file ({err})") from None
    if dtype.hasobject:
        raise DataFormatError(path, "holds Python objects (pickled array); refusing to load it")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        raise DataFormatError(path, f"truncated: {size} bytes on disk, the header needs {expected}")
    return NpyHeader(tuple(int(s) for s in shape), dtype, bool(fortran))


def open_array(path: Path, mmap: bool = True) -> np.ndarray:
    """Memory-map (or load) the array in ``path``; no pickles."""
    read_header(path)  # clear errors for missing, corrupt, truncated and object files
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataFormatError(path, f"unreadable .npy file ({err})") from None


def load_small(path: Path) -> np.ndarray:
    """Load a small metadata array fully into memory."""
    return np.array(open_array(path, mmap=False))
