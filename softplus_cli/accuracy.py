"""Accuracy of an implementation against correctly rounded references.

`Tally` accumulates, chunk by chunk, how far one implementation's results are
from the correctly rounded ones. It counts the results that differ, the max
and mean error in ulp of the target dtype and the worst input, and it counts
the special values (inf, nan, -0.0, subnormals) among the results.
`IMPLEMENTATIONS` names the implementations that can be checked: the project
itself and, when installed, NumPy, PyTorch, JAX and TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from softplus_cli.activations import Parameters

SPECIAL_KINDS = ("inf", "nan", "-0", "subnormal")


def ulp_of(reference: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Return the spacing of `dtype` values at each finite `reference` value.

    `reference` is in a wider dtype (float64 or numpy.longdouble). Values beyond
    the dtype's max get the spacing at the max, zero gets the smallest subnormal.
    """
    import numpy as np

    finfo = np.finfo(dtype)
    kind = reference.dtype.type
    _, exponent = np.frexp(np.abs(reference))
    # frexp gives |v| = m * 2**e with m in [0.5, 1), so the binade is e - 1.
    binade = np.clip(
        exponent.astype(np.int64) - 1, int(finfo.minexp), int(finfo.maxexp) - 1
    )
    binade = np.where(reference == 0, int(finfo.minexp), binade)
    return np.ldexp(kind(1), (binade - int(finfo.nmant)).astype(np.int32))


def ulp_error(result: np.ndarray, exact: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Return |result - exact| in ulp of `dtype` at `exact` (0 where both agree on
    a non-finite value, inf where only one of them is finite)."""
    import numpy as np

    wide = result.astype(exact.dtype)
    with np.errstate(all="ignore"):
        error = np.abs(wide - exact) / ulp_of(exact, dtype)
    same_nan = np.isnan(wide) & np.isnan(exact)
    same_inf = np.isinf(wide) & (wide == exact)
    # An exact value beyond the dtype's range rounds to inf: a result of inf
    # there is correct, so its error is measured against the overflow threshold.
    error = np.where(same_nan | same_inf, 0.0, error)
    one_nan = np.isnan(wide) ^ np.isnan(exact)
    return np.where(one_nan, np.inf, error)


def special_counts(values: np.ndarray) -> dict[str, int]:
    """Count the infinities, NaNs, negative zeros and subnormals in `values`."""
    import numpy as np

    wide = values.astype(np.float64) if values.dtype.itemsize < 8 else values
    tiny = float(np.finfo(values.dtype).smallest_normal)
    return {
        "inf": int(np.isinf(wide).sum()),
        "nan": int(np.isnan(wide).sum()),
        "-0": int(((wide == 0) & np.signbit(wide)).sum()),
        "subnormal": int(((wide != 0) & (np.abs(wide) < tiny)).sum()),
    }


@dataclass
class Tally:
    """Accuracy statistics of one function (or derivative) in one dtype."""

    inputs: int = 0
    wrong: int = 0
    max_ulp: float = 0.0
    sum_ulp: float = 0.0
    worst_input: float = math.nan
    worst_result: float = math.nan
    worst_reference: float = math.nan
    flushed: int = 0
    special: dict[str, list[int]] = field(
        default_factory=lambda: {kind: [0, 0] for kind in SPECIAL_KINDS}
    )

    @property
    def mean_ulp(self) -> float:
        return self.sum_ulp / self.inputs if self.inputs else 0.0

    def add(
        self,
        x: np.ndarray,
        result: np.ndarray,
        reference: np.ndarray,
        exact: np.ndarray,
    ) -> None:
        """Add one chunk: inputs `x`, the results checked, the correctly rounded
        `reference`, and the exact values `exact` in a wider dtype."""
        import numpy as np

        dtype = reference.dtype
        wide_result = result.astype(np.float64) if dtype.itemsize < 8 else result
        wide_reference = (
            reference.astype(np.float64) if dtype.itemsize < 8 else reference
        )
        same = (wide_result == wide_reference) | (
            np.isnan(wide_result) & np.isnan(wide_reference)
        )
        errors = ulp_error(result, exact, dtype)
        # An infinite reference carries no finite error scale: a finite result
        # there counts as wrong but adds nothing to the mean.
        finite_errors = np.where(np.isfinite(errors), errors, 0.0)

        # The worst input can be NaN itself (a number returned for a NaN
        # input), so the input count shows whether the tally is empty.
        empty = self.inputs == 0
        self.inputs += x.size
        self.wrong += int((~same).sum())
        self.sum_ulp += float(finite_errors.sum())
        # A wrong result is more than 0.5 ulp from the exact value and a right
        # one at most 0.5 ulp, so the largest error picks a wrong one if any.
        ranked = np.where(np.isnan(errors), -1.0, errors)
        if x.size:
            index = int(np.argmax(ranked))
            if ranked[index] > self.max_ulp or empty:
                self.max_ulp = max(self.max_ulp, float(ranked[index]))
                self.worst_input = float(x[index])
                self.worst_result = float(result[index])
                self.worst_reference = float(reference[index])
        tiny = float(np.finfo(dtype).smallest_normal)
        self.flushed += int(
            (
                (wide_result == 0)
                & (wide_reference != 0)
                & (np.abs(wide_reference) < tiny)
            ).sum()
        )
        for kind, count in special_counts(result).items():
            self.special[kind][0] += count
        for kind, count in special_counts(reference).items():
            self.special[kind][1] += count

    def merge(self, other: Tally) -> None:
        """Add another tally's counts, keeping the worse of the two worst inputs."""
        if other.max_ulp > self.max_ulp or (self.inputs == 0 and other.inputs):
            self.max_ulp = other.max_ulp
            self.worst_input = other.worst_input
            self.worst_result = other.worst_result
            self.worst_reference = other.worst_reference
        self.inputs += other.inputs
        self.wrong += other.wrong
        self.sum_ulp += other.sum_ulp
        self.flushed += other.flushed
        for kind in SPECIAL_KINDS:
            self.special[kind][0] += other.special[kind][0]
            self.special[kind][1] += other.special[kind][1]


class MissingFrameworkError(RuntimeError):
    """Raised when the implementation to check is not installed."""


class UnsupportedSettingError(ValueError):
    """Raised when an implementation has no equivalent of a requested setting."""


Implementation = Callable[[str, bool, "np.ndarray", "Parameters"], "np.ndarray"]


def _project(
    name: str, derivative: bool, x: np.ndarray, parameters: Parameters
) -> np.ndarray:
    from softplus_cli.activations import ACTIVATIONS, evaluate

    return evaluate(ACTIVATIONS[name], x, parameters, derivative=derivative)


def _require_defaults(
    framework: str, name: str, parameters: Parameters, allowed: tuple[str, ...] = ()
) -> None:
    from softplus_cli.activations import ACTIVATIONS, PARAMETERS

    for parameter in ACTIVATIONS[name].parameters:
        value = parameters.get(parameter, PARAMETERS[parameter].default)
        if parameter not in allowed and value != PARAMETERS[parameter].default:
            raise UnsupportedSettingError(
                f"{framework} has no {PARAMETERS[parameter].option} for {name}: "
                "check it with the default"
            )


def _numpy(
    name: str, derivative: bool, x: np.ndarray, parameters: Parameters
) -> np.ndarray:
    """NumPy's usual formulas, evaluated in the dtype of `x` (float32 for bfloat16,
    which has no NumPy loops of its own)."""
    import numpy as np

    _require_defaults("numpy", name, parameters)
    work = (
        x.astype(np.float32) if x.dtype.itemsize == 2 and x.dtype != np.float16 else x
    )
    with np.errstate(all="ignore"):
        sigmoid = 1 / (1 + np.exp(-work))
        if name == "softplus":
            result = sigmoid if derivative else np.logaddexp(work.dtype.type(0), work)
        elif name == "sigmoid":
            result = sigmoid * (1 - sigmoid) if derivative else sigmoid
        elif derivative:
            result = (work > 0).astype(work.dtype)
        else:
            result = np.maximum(work, work.dtype.type(0))
        return np.asarray(result).astype(x.dtype)


def _torch(
    name: str, derivative: bool, x: np.ndarray, parameters: Parameters
) -> np.ndarray:
    """torch.nn.functional's activations and their autograd derivatives on CPU."""
    import numpy as np

    try:
        import torch
    except ImportError:
        raise MissingFrameworkError(
            "torch is not installed: pip install torch"
        ) from None
    import torch.nn.functional as functional

    _require_defaults("torch", name, parameters, allowed=("beta", "threshold"))
    bfloat16 = x.dtype.itemsize == 2 and x.dtype != np.float16
    source = x.astype(np.float32) if bfloat16 else x
    tensor = torch.from_numpy(np.ascontiguousarray(source))
    if bfloat16:
        tensor = tensor.to(torch.bfloat16)
    tensor.requires_grad_(derivative)
    if name == "softplus":
        beta = float(parameters.get("beta") or 1.0)
        threshold = parameters.get("threshold")
        # PyTorch always applies its threshold (20 by default).
        output = functional.softplus(
            tensor, beta=beta, threshold=20.0 if threshold is None else float(threshold)
        )
    elif name == "sigmoid":
        output = torch.sigmoid(tensor)
    else:
        output = functional.relu(tensor)
    if derivative:
        (output,) = torch.autograd.grad(output, tensor, torch.ones_like(output))
    output = output.detach()
    if bfloat16:
        output = output.to(torch.float32)
    return output.numpy().astype(x.dtype)


def _jax(
    name: str, derivative: bool, x: np.ndarray, parameters: Parameters
) -> np.ndarray:
    """jax.nn's activations and jax.grad derivatives, with float64 enabled."""
    import numpy as np

    try:
        import jax  # type: ignore[import-not-found]
    except ImportError:
        raise MissingFrameworkError("jax is not installed: pip install jax") from None
    import jax.numpy as jnp  # type: ignore[import-not-found]

    _require_defaults("jax", name, parameters)
    jax.config.update("jax_enable_x64", True)
    function = {
        "softplus": jax.nn.softplus,
        "sigmoid": jax.nn.sigmoid,
        "relu": jax.nn.relu,
    }[name]
    if derivative:
        function = jax.vmap(jax.grad(function))
    return np.asarray(function(jnp.asarray(x))).astype(x.dtype)


def _tensorflow(
    name: str, derivative: bool, x: np.ndarray, parameters: Parameters
) -> np.ndarray:
    """tf.nn's activations and GradientTape derivatives."""
    import numpy as np

    try:
        import tensorflow as tf  # type: ignore[import-untyped]
    except ImportError:
        raise MissingFrameworkError(
            "tensorflow is not installed: pip install tensorflow"
        ) from None

    _require_defaults("tensorflow", name, parameters)
    bfloat16 = x.dtype.itemsize == 2 and x.dtype != np.float16
    tensor = tf.constant(x.astype(np.float32) if bfloat16 else x)
    if bfloat16:
        tensor = tf.cast(tensor, tf.bfloat16)
    function = {
        "softplus": tf.nn.softplus,
        "sigmoid": tf.math.sigmoid,
        "relu": tf.nn.relu,
    }[name]
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        output = function(tensor)
    if derivative:
        output = tape.gradient(output, tensor)
    if bfloat16:
        output = tf.cast(output, tf.float32)
    return output.numpy().astype(x.dtype)


IMPLEMENTATIONS: dict[str, Implementation] = {
    "project": _project,
    "numpy": _numpy,
    "torch": _torch,
    "jax": _jax,
    "tensorflow": _tensorflow,
}

FRAMEWORK_PACKAGES = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow"}


def framework_installed(name: str) -> bool:
    """Return whether the implementation called `name` can be imported."""
    import importlib.util

    package = FRAMEWORK_PACKAGES.get(name)
    return package is None or importlib.util.find_spec(package) is not None


def exact_in_working(
    name: str, derivative: bool, x: np.ndarray, parameters: Parameters
) -> tuple[np.ndarray, np.ndarray]:
    """Return the project's correctly rounded results and its fast-path values.

    The fast-path values are within the kernel's error bound of the exact ones,
    in the working dtype, which is far finer than an ulp of x's dtype: they
    measure ulp errors without calling mpmath on every input.
    """
    import numpy as np

    from softplus_cli.activations import ACTIVATIONS, evaluate
    from softplus_cli.dtypes import working_dtype

    activation = ACTIVATIONS[name]
    kernel = activation.derivative if derivative else activation.value
    with np.errstate(all="ignore"):
        approx = kernel.approx(x.astype(working_dtype(x.dtype)), parameters)
    reference = evaluate(activation, x, parameters, derivative=derivative)
    return reference, approx


def exact_by_mpmath(
    name: str, derivative: bool, x: np.ndarray, parameters: Parameters, digits: int = 40
) -> tuple[np.ndarray, np.ndarray]:
    """Return mpmath's correctly rounded results and its values in the working
    dtype, evaluating every input in mpmath (no fast path)."""
    import mpmath
    import numpy as np

    from softplus_cli.activations import ACTIVATIONS
    from softplus_cli.dtypes import working_dtype
    from softplus_cli.rounding import round_exact

    activation = ACTIVATIONS[name]
    kernel = activation.derivative if derivative else activation.value
    working = working_dtype(x.dtype)
    reference = np.empty_like(x)
    exact = np.empty(x.shape, dtype=working)

    def function(value: Any) -> Any:
        return kernel.exact(value, parameters)

    for index, value in enumerate(x.tolist()):
        if math.isnan(value):
            reference[index] = np.nan
            exact[index] = np.nan
            continue
        if math.isinf(value):
            # mpmath's limits at ±inf are the functions' limits, and they are
            # exact values of every dtype.
            with np.errstate(all="ignore"):
                limit = kernel.approx(np.array([value], dtype=working), parameters)[0]
            reference[index] = limit
            exact[index] = limit
            continue
        reference[index] = round_exact(function, value, x.dtype)
        with mpmath.workprec(2 * 64 + 16):
            high = function(mpmath.mpf(value))
            first = float(high)
            exact[index] = working.type(first) + working.type(float(high - first))
    return reference, exact


# --- inputs ---------------------------------------------------------------


def special_inputs(dtype: np.dtype) -> np.ndarray:
    """Return ±0, ±inf, nan and the extremes of `dtype`: inputs every check includes."""
    import numpy as np

    finfo = np.finfo(dtype)
    values = [
        0.0,
        float(finfo.smallest_subnormal),
        float(finfo.smallest_normal),
        1.0,
        float(finfo.max),
        float("inf"),
    ]
    positive = np.array(values, dtype=np.float64).astype(dtype)
    return np.concatenate([positive, -positive, np.array([np.nan], dtype=dtype)])


def _ordered(bits: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Map bit patterns to integers that sort like the values they encode, with
    -0.0 (key -1) just below +0.0 (key 0)."""
    import numpy as np

    sign = np.int64(1) << np.int64(8 * dtype.itemsize - 1)
    as_int = bits.astype(np.int64)
    magnitude = as_int & (sign - 1)
    return np.where(as_int & sign, -magnitude - 1, magnitude)


def _from_ordered(keys: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Inverse of `_ordered`: the values of `dtype` at the given sort keys."""
    import numpy as np

    sign = np.int64(1) << np.int64(8 * dtype.itemsize - 1)
    bits = np.where(keys < 0, (-keys - 1) | sign, keys)
    return bits.astype(np.dtype(f"u{dtype.itemsize}")).view(dtype)


def value_range(dtype: np.dtype, low: float, high: float) -> tuple[int, int]:
    """Return the sort keys of the smallest and largest `dtype` values in
    [low, high]. -0.0 counts as inside when 0 is, unless low is +0.0."""
    import numpy as np

    unsigned = np.dtype(f"u{dtype.itemsize}")
    with np.errstate(over="ignore"):
        ends = np.array([low, high], dtype=np.float64).astype(dtype)
    keys = _ordered(ends.view(unsigned), dtype)
    # Step inward where rounding to the dtype moved an end outside the range.
    while _from_ordered(keys[:1], dtype).astype(np.float64)[0] < low:
        keys[0] += 1
    while _from_ordered(keys[1:], dtype).astype(np.float64)[0] > high:
        keys[1] -= 1
    if low == 0 and not np.signbit(low):
        keys[0] = max(keys[0], 0)
    return int(keys[0]), int(keys[1])


def exhaustive_chunks(
    dtype: np.dtype, low: float | None, high: float | None, chunk: int
):
    """Yield every value of `dtype` (in [low, high] when given) in chunks.

    Without a range the chunks cover every bit pattern, NaNs and -0.0 included.
    With one, they hold the values from low to high in increasing order, with
    -0.0 and +0.0 both present when 0 is inside.
    """
    import numpy as np

    unsigned = np.dtype(f"u{dtype.itemsize}")
    if low is None or high is None:
        total = 1 << (8 * dtype.itemsize)
        for start in range(0, total, chunk):
            bits = np.arange(start, min(start + chunk, total), dtype=np.uint64)
            yield bits.astype(unsigned).view(dtype)
        return
    first, last = value_range(dtype, low, high)
    for start in range(first, last + 1, chunk):
        keys = np.arange(start, min(start + chunk, last + 1), dtype=np.int64)
        yield _from_ordered(keys, dtype)


def exhaustive_count(dtype: np.dtype, low: float | None, high: float | None) -> int:
    """Return how many inputs `exhaustive_chunks` yields."""
    if low is None or high is None:
        return 1 << (8 * dtype.itemsize)
    first, last = value_range(dtype, low, high)
    return max(0, last - first + 1)


def sample_inputs(
    dtype: np.dtype, count: int, seed: int, low: float | None, high: float | None
) -> np.ndarray:
    """Return `count` random inputs of `dtype` plus the special ones.

    Without a range the inputs are random bit patterns of finite values, so every
    exponent is covered about equally. With one they are uniform in [low, high].
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    if low is None or high is None:
        unsigned = np.dtype(f"u{dtype.itemsize}")
        chosen = np.empty(0, dtype=dtype)
        while chosen.size < count:
            bits = rng.integers(
                0, np.iinfo(unsigned).max, size=2 * count, dtype=unsigned, endpoint=True
            )
            values = bits.view(dtype)
            with np.errstate(invalid="ignore"):
                finite = np.isfinite(values.astype(np.float64))
            chosen = np.concatenate([chosen, values[finite]])
        return np.concatenate([special_inputs(dtype), chosen[:count]])
    with np.errstate(over="ignore"):
        # rng.uniform(low, high) overflows when high - low exceeds float64's
        # range, as for -1e308:1e308; this blend of the two ends cannot.
        fraction = rng.random(count)
        uniform = (low * (1 - fraction) + high * fraction).astype(dtype)
    specials = special_inputs(dtype)
    inside = specials[
        (specials.astype(np.float64) >= low) & (specials.astype(np.float64) <= high)
    ]
    return np.concatenate([inside, uniform])
