"""Reading a pickle of numpy arrays without letting it run code.

The VGGFace ResNet-50 weights (`resnet50_ft_weight.pkl`, recipe §4.1) are a dictionary of numpy arrays pickled by
Python 2 and read with `encoding='latin1'`. A plain `pickle.load` of a downloaded file runs whatever callables the
file names; :func:`load_numpy_pickle` resolves only the handful of globals such a file needs (numpy's array and dtype
reconstruction, OrderedDict, and the latin-1 bytes codec of protocol-2 pickles written by Python 3) and refuses
every other one before anything is called.
"""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from sf2f.errors import SF2FError

try:  # numpy 2 moved its internals to numpy._core; numpy 1 has them in numpy.core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy < 2
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

__all__ = ["UnsafePickleError", "load_numpy_pickle"]


class UnsafePickleError(SF2FError, pickle.UnpicklingError):
    """The file names a global outside the numpy-and-containers allow-list, or is not a mapping of arrays."""


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What `_codecs.encode` does in a protocol-2 pickle of bytes, limited to latin-1 (the only use numpy makes)."""
    if not isinstance(text, str) or encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise UnsafePickleError(f"_codecs.encode is admitted only as encode(str, 'latin1'), got encoding {encoding!r}")
    return text.encode("latin1")


# (module, name) as written in the pickle -> the object it may resolve to; numpy 1 pickles say numpy.core.*,
# numpy 2 pickles numpy._core.*
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
for _module in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_module}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(f"{_module}.multiarray", "scalar")] = _multiarray.scalar
    _ALLOWED[(f"{_module}.numeric", "_frombuffer")] = _numeric._frombuffer


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refuses to load '{module}.{name}': only numpy arrays and plain containers are "
                "admitted in a weight pickle (this file may carry code; it was not run)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: persistent ids are not admitted in a weight pickle")


def load_numpy_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """A pickled mapping of names to numeric numpy arrays, read through the allow-list above (latin-1 strings)."""
    path = Path(path)
    with path.open("rb") as handle:
        try:
            data = _NumpyOnlyUnpickler(handle, str(path)).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            raise UnsafePickleError(f"{path}: not a readable pickle of numpy arrays ({exc})") from None
    if not isinstance(data, dict):
        raise UnsafePickleError(f"{path}: holds a {type(data).__name__}, expected a mapping of names to arrays")
    for key, value in data.items():
        if not isinstance(key, str):
            raise UnsafePickleError(f"{path}: key {key!r} is not a string")
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiub":
            what = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise UnsafePickleError(f"{path}: '{key}' holds {what}, expected a numeric numpy array")
    return dict(data)
