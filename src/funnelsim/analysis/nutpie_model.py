"""A PyMC model as a nutpie model that loads in a second or two once compiled.

nutpie's ``compile_pymc_model`` compiles the log density and its gradient with PyTensor's
Numba backend, which PyTensor caches on disk (see :mod:`funnelsim.compile_cache`), then
wraps that function in a Numba C callback for the Rust sampler. The callback closes over
the inner function, whose identity changes in every process, so Numba never finds it in
its cache and compiles it again in every process: about 10 s of each fit on two cores,
even with everything else cached (nutpie pull request 334). Here the sampler calls the
cached function through Python instead (nutpie's ``from_pyfunc``), which costs a few
microseconds per gradient evaluation, well under a second for the ~70,000 evaluations of
a 4 x 2,000-draw fit. The log density is built as nutpie builds it (canonicalised and
stabilised before the gradient is taken, the same jittered initial points), so a fit
draws the same numbers for the same seed either way.
"""

from __future__ import annotations

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


class Flattening(NamedTuple):
    """Where each free variable's (transformed) values sit in the sampler's flat vector."""

    names: list[str]
    shapes: list[tuple[int, ...]]
    slices: list[slice]

    @property
    def size(self) -> int:
        """Length of the flat vector."""
        return self.slices[-1].stop if self.slices else 0


def compile_model(model: pm.Model) -> Any:
    """A nutpie model of ``model`` (``nutpie.sample`` takes it) whose log density and
    gradient are PyTensor's Numba function, loaded from the compile cache when there."""
    from nutpie.compiled_pyfunc import from_pyfunc

    flattening = _flattening(model)
    flat = pt.TensorType("float64", shape=(flattening.size,))(name="_unconstrained_point")
    pieces = {
        model.rvs_to_values[rv]: flat[part].reshape(shape).astype(rv.dtype)
        for rv, part, shape in zip(
            model.free_RVs, flattening.slices, flattening.shapes, strict=True
        )
    }
    logp_and_gradient = _logp_and_gradient(model, flat, pieces)
    remaining = [v for v in model.unobserved_value_vars if v.name not in flattening.names]
    with model:
        expand = compile_pymc(
            (flat,), [*pieces.values(), *remaining], givens=list(pieces.items()), mode="NUMBA"
        )
    initial_point = _initial_point_function(model, flattening)
    names = [*flattening.names, *(v.name for v in remaining)]
    shapes = [np.shape(value) for value in expand(initial_point(0))]
    return from_pyfunc(
        ndim=flattening.size,
        make_logp_fn=lambda: _logp_caller(logp_and_gradient),
        make_expand_fn=lambda *_seeds_and_chain: _expand_caller(expand, names, shapes),
        make_initial_point_fn=initial_point,
        expanded_dtypes=[np.dtype("float64")] * len(names),
        expanded_shapes=shapes,
        expanded_names=names,
        dims=dict(model.named_vars_to_dims),
        coords={name: list(values) for name, values in _coords(model).items()},
    )


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


def _logp_caller(function: Function) -> Callable[[FloatArray], tuple[float, FloatArray]]:
    jitted, shared = function.vm.jit_fn, _shared_values(function)

    def logp(point: FloatArray) -> tuple[float, FloatArray]:
        value, gradient = jitted(point, *shared)
        return float(value), gradient

    return logp


def _expand_caller(
    function: Function, names: list[str], shapes: list[tuple[int, ...]]
) -> Callable[[FloatArray], dict[str, FloatArray]]:
    jitted, shared = function.vm.jit_fn, _shared_values(function)

    def expand(point: FloatArray) -> dict[str, FloatArray]:
        return {
            name: np.asarray(value, dtype=np.float64, order="C").reshape(shape)
            for name, value, shape in zip(names, jitted(point, *shared), shapes, strict=True)
        }

    return expand


def _shared_values(function: Function) -> list[Any]:
    """The values of the shared variables (``pm.Data``) the Numba function takes after
    its inputs."""
    return [variable.get_value() for variable in function.get_shared()]
