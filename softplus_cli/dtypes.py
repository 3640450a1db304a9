"""Floating-point formats that results can be computed in."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64")
DEFAULT_DTYPE = "float32"


class UnknownDtypeError(ValueError):
    """Raised for a dtype name that is not one of `DTYPE_NAMES`."""


def resolve_dtype(name: str) -> np.dtype:
    """Return the NumPy dtype called `name`, importing ml_dtypes for bfloat16."""
    import numpy as np

    if name not in DTYPE_NAMES:
        choices = ", ".join(DTYPE_NAMES)
        raise UnknownDtypeError(f"unknown dtype {name!r}: use one of {choices}")
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def working_dtype(dtype: np.dtype) -> np.dtype:
    """Return the wider dtype in which results for `dtype` are first approximated.

    float64 results are approximated in x87 extended precision (numpy.longdouble),
    everything narrower in float64. Both have a wider exponent range than the
    target, so an approximation that underflows or overflows there does so in the
    target as well.
    """
    import numpy as np

    if dtype == np.float64:
        return np.dtype(np.longdouble)
    return np.dtype(np.float64)


def unsigned_view(dtype: np.dtype) -> np.dtype:
    """Return the unsigned integer dtype with the same width as `dtype`."""
    import numpy as np

    return np.dtype(f"u{dtype.itemsize}")
