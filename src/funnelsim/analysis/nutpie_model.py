"""A PyMC model as a nutpie model that loads in a second or two once compiled.

nutpie's ``compile_pymc_model`` compiles the log density and its gradient with PyTensor's
Numba backend, which PyTensor caches on disk (see :mod:`funnelsim.compile_cache`), then
wraps that function in a Numba C callback for the Rust sampler. The callback closes over
the inner function, whose identity changes in every process, so Numba never finds it in
its cache and compiles it again in every process: about 10 s of each fit on two cores,
even with everything else cached (nutpie pull request 334).

Here the C callbacks (log density and gradient; the draw's derived quantities) are
generated from a fixed source and registered with PyTensor's Numba cache under a key
derived from the inner function's own cache key, so a later process loads them too.
They run without Python's global interpreter lock, so nutpie's chains sample in
parallel. A model whose compiled function PyTensor cannot cache, or that reads data
containers (``pm.Data``, which nutpie's callbacks take at run time), is called through
Python instead (nutpie's ``from_pyfunc``; a few microseconds per gradient evaluation,
one chain at a time). The log density is built as nutpie builds it (canonicalised and
stabilised before the gradient is taken, the same jittered initial points), so a fit
draws the same numbers for the same seed either way.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.initial_point import make_initial_point_fn
from pymc.pytensorf import compile as compile_pymc
from pytensor.compile.function.types import Function

FloatArray = npt.NDArray[np.float64]

LOGP_SOURCE = """
def logp_and_gradient(dim, x_, out_, logp_, user_data_):
    if dim != N_DIM:
        return -1
    try:
        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_DIM,))
        logp = numba.carray(logp_, ())
        value, gradient = inner(x)
        logp[()] = value
        out[...] = gradient
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(value):
            return 4
    except Exception:
        return 1
    return 0
"""
"""nutpie's log density callback (its return codes: 3 and 4 a non-finite gradient or
density, 1 an error), calling PyTensor's compiled function ``inner``."""

EXPAND_SOURCE = """
def expand(dim, expanded, x_, out_, user_data_):
    if dim != N_DIM or expanded != N_EXPANDED:
        return -1
    try:
        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_EXPANDED,))
        (values,) = inner(x)
        out[...] = values
    except Exception:
        return -2
    return 0
"""
"""nutpie's callback from a point to the draw it stores (the point, then the derived
quantities), calling PyTensor's compiled function ``inner``."""


class Flattening(NamedTuple):
    """Where each free variable's (transformed) values sit in the sampler's flat vector."""

    names: list[str]
    shapes: list[tuple[int, ...]]
    slices: list[slice]

    @property
    def size(self) -> int:
        """Length of the flat vector."""
        return self.slices[-1].stop if self.slices else 0


class Expansion(NamedTuple):
    """A draw as nutpie stores it: one flat vector, the free variables then the derived
    quantities, each a slice of it."""

    function: Function
    names: list[str]
    slices: list[slice]
    shapes: list[tuple[int, ...]]

    @property
    def size(self) -> int:
        """Length of a stored draw."""
        return self.slices[-1].stop if self.slices else 0


def compile_model(model: pm.Model) -> Any:
    """A nutpie model of ``model`` (``nutpie.sample`` takes it) whose log density and
    gradient are PyTensor's Numba function, loaded from the compile cache when there."""
    flattening = _flattening(model)
    flat = pt.TensorType("float64", shape=(flattening.size,))(name="_unconstrained_point")
    pieces = {
        model.rvs_to_values[rv]: flat[part].reshape(shape).astype(rv.dtype)
        for rv, part, shape in zip(
            model.free_RVs, flattening.slices, flattening.shapes, strict=True
        )
    }
    logp_and_gradient = _logp_and_gradient(model, flat, pieces)
    expansion = _expansion(model, flattening, flat, pieces)
    initial_point = _initial_point_function(model, flattening)
    functions = (logp_and_gradient, expansion.function)
    if all(_cache_key(f) is not None and not f.get_shared() for f in functions):
        return _c_model(model, flattening, logp_and_gradient, expansion, initial_point)
    return _python_model(model, flattening, logp_and_gradient, expansion, initial_point)


def _flattening(model: pm.Model) -> Flattening:
    shapes_by_name = model.eval_rv_shapes()
    names, shapes, slices, start = [], [], [], 0
    for rv in model.free_RVs:
        name = model.rvs_to_values[rv].name
        shape = tuple(int(length) for length in shapes_by_name[name])
        names.append(name)
        shapes.append(shape)
        slices.append(slice(start, start + math.prod(shape)))
        start += math.prod(shape)
    return Flattening(names, shapes, slices)


def _logp_and_gradient(
    model: pm.Model, flat: pt.TensorVariable, pieces: dict[Any, pt.TensorVariable]
) -> Function:
    """The compiled function of the flat vector to (log density, its gradient)."""
    rewrites = ["canonicalize", "stabilize"]
    if not model.check_bounds:
        rewrites.append("local_remove_check_parameter")
    logp = pytensor.graph.rewrite_graph(model.logp(), include=rewrites)
    gradient = pt.concatenate([g.ravel() for g in pytensor.gradient.grad(logp, list(pieces))])
    logp, gradient = pytensor.clone_replace([logp, gradient], pieces)
    with model:
        return compile_pymc((flat,), (logp, gradient), mode="NUMBA")


def _expansion(
    model: pm.Model,
    flattening: Flattening,
    flat: pt.TensorVariable,
    pieces: dict[Any, pt.TensorVariable],
) -> Expansion:
    """The compiled function of the flat vector to the stored draw (the vector, then each
    derived quantity raveled), with each variable's place in it."""
    remaining = [v for v in model.unobserved_value_vars if v.name not in flattening.names]
    with model:
        shapes_of = pytensor.function(
            [flat],
            [pt.as_tensor(v.shape) for v in remaining],
            givens=list(pieces.items()),
            mode="FAST_COMPILE",
            on_unused_input="ignore",
        )
        joined = pt.concatenate([flat, *(v.ravel() for v in remaining)])
        function = compile_pymc((flat,), [joined], givens=list(pieces.items()), mode="NUMBA")
    names, slices, shapes = list(flattening.names), list(flattening.slices), flattening.shapes
    shapes = [*shapes, *(tuple(int(n) for n in s) for s in shapes_of(np.zeros(flattening.size)))]
    start = flattening.size
    for variable, shape in zip(remaining, shapes[len(names) :], strict=True):
        names.append(variable.name)
        slices.append(slice(start, start + math.prod(shape)))
        start += math.prod(shape)
    return Expansion(function, names, slices, shapes)


def _initial_point_function(model: pm.Model, flattening: Flattening) -> Callable[[int], FloatArray]:
    """Seed -> flat starting point: PyMC's support points jittered by U(-1, 1), as nutpie
    starts; a lock, since the sampler's threads may ask at once."""
    points = make_initial_point_fn(
        model=model, jitter_rvs=set(model.free_RVs), return_transformed=True
    )
    lock = threading.Lock()

    def initial_point(seed: int) -> FloatArray:
        with lock:
            point = points(seed)
        return np.concatenate([np.ravel(point[name]) for name in flattening.names]).astype(
            np.float64
        )

    return initial_point


def _coords(model: pm.Model) -> dict[str, Any]:
    return {
        name: range(int(model.dim_lengths[name].eval())) if values is None else values
        for name, values in model.coords.items()
    }


# --------------------------------------------------------------------------- C callbacks


def _cache_key(function: Function) -> str | None:
    """PyTensor's Numba cache key of a compiled function (None: it is not cached, e.g.
    an operation calling a SciPy function through a pointer)."""
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    return CACHED_SRC_FUNCTIONS.get(function.vm.jit_fn.py_func)


def _cached_cfunc(source: str, function: Function, signature: Any, sizes: dict[str, int]) -> Any:
    """A Numba C callback from ``source`` calling ``function``'s compiled code, cached on
    disk beside it: its key is that of ``function``, the source and ``sizes``."""
    import numba
    from pytensor.link.numba.cache import compile_numba_function_src

    name = source.split("def ", 1)[1].split("(", 1)[0]
    key = hashlib.sha256(
        "|".join([str(_cache_key(function)), source, repr(sorted(sizes.items()))]).encode()
    ).hexdigest()
    python_function = compile_numba_function_src(
        source,
        name,
        {"__name__": __name__, "numba": numba, "np": np, "inner": function.vm.jit_fn, **sizes},
        cache_key=f"funnelsim-nutpie-{key}",
    )
    return numba.cfunc(signature, cache=True)(python_function)


def _c_model(
    model: pm.Model,
    flattening: Flattening,
    logp_and_gradient: Function,
    expansion: Expansion,
    initial_point: Callable[[int], FloatArray],
) -> Any:
    """nutpie's compiled PyMC model over C callbacks: the sampler's threads call the
    compiled code without the interpreter lock."""
    from numba import types
    from nutpie.compile_pymc import CompiledPyMCModel, make_user_data

    pointer = types.CPointer(types.double)
    logp_signature = types.int64(types.uint64, pointer, pointer, pointer, types.voidptr)
    expand_signature = types.int64(types.uint64, types.uint64, pointer, pointer, types.voidptr)
    sizes = {"N_DIM": flattening.size, "N_EXPANDED": expansion.size}
    return CompiledPyMCModel(
        _n_dim=flattening.size,
        dims=dict(model.named_vars_to_dims),
        _coords={name: list(values) for name, values in _coords(model).items()},
        _shapes=dict(zip(expansion.names, expansion.shapes, strict=True)),
        compiled_logp_func=_cached_cfunc(LOGP_SOURCE, logp_and_gradient, logp_signature, sizes),
        compiled_expand_func=_cached_cfunc(
            EXPAND_SOURCE, expansion.function, expand_signature, sizes
        ),
        initial_point_func=initial_point,
        shared_data={},
        user_data=make_user_data({}, {}),
        n_expanded=expansion.size,
        shape_info=(expansion.names, expansion.slices, expansion.shapes),
        logp_func=logp_and_gradient,
        expand_func=expansion.function,
    )


# --------------------------------------------------------------------------- Python callbacks


def _python_model(
    model: pm.Model,
    flattening: Flattening,
    logp_and_gradient: Function,
    expansion: Expansion,
    initial_point: Callable[[int], FloatArray],
) -> Any:
    """nutpie's model over Python callables of the compiled functions (data containers
    are read from the model's shared variables)."""
    from nutpie.compiled_pyfunc import from_pyfunc

    return from_pyfunc(
        ndim=flattening.size,
        make_logp_fn=lambda: _logp_caller(logp_and_gradient),
        make_expand_fn=lambda *_seeds_and_chain: _expand_caller(expansion),
        make_initial_point_fn=initial_point,
        expanded_dtypes=[np.dtype("float64")] * len(expansion.names),
        expanded_shapes=expansion.shapes,
        expanded_names=expansion.names,
        dims=dict(model.named_vars_to_dims),
        coords={name: list(values) for name, values in _coords(model).items()},
    )


def _logp_caller(function: Function) -> Callable[[FloatArray], tuple[float, FloatArray]]:
    jitted, shared = function.vm.jit_fn, _shared_values(function)

    def logp(point: FloatArray) -> tuple[float, FloatArray]:
        value, gradient = jitted(point, *shared)
        return float(value), gradient

    return logp


def _expand_caller(expansion: Expansion) -> Callable[[FloatArray], dict[str, FloatArray]]:
    jitted, shared = expansion.function.vm.jit_fn, _shared_values(expansion.function)

    def expand(point: FloatArray) -> dict[str, FloatArray]:
        (values,) = jitted(point, *shared)
        return {
            name: np.asarray(values[part], dtype=np.float64, order="C").reshape(shape)
            for name, part, shape in zip(
                expansion.names, expansion.slices, expansion.shapes, strict=True
            )
        }

    return expand


def _shared_values(function: Function) -> list[Any]:
    """The values of the shared variables (``pm.Data``) the Numba function takes after
    its inputs."""
    return [variable.get_value() for variable in function.get_shared()]
