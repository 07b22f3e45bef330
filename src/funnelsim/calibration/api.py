"""Calibrating a scenario file to a data file, and writing the results atomically."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from funnelsim.calibration.readers import (
    StageCounts,
    read_event_log,
    read_funnel_counts,
    read_visitor_flags,
)
from funnelsim.execution import SERIAL, Execution

if TYPE_CHECKING:
    from funnelsim.analysis.models import SamplerSettings
    from funnelsim.calibration.fit import Calibration
    from funnelsim.calibration.sbc import SBCResult

OUTPUT_NAMES = ("calibration.json", "posterior.nc", "calibrated.yaml")
SBC_NAME = "sbc.json"


def read_counts(
    path: str | PathLike[str],
    stage_columns: Sequence[str] | None = None,
    by: Sequence[str] = (),
    stage_map: Mapping[str, str] | None = None,
    arm: tuple[str, str] | None = None,
    delayed: Sequence[str] = (),
) -> StageCounts:
    """The counts of a data file: an event log with ``stage_map`` (``delayed``: the
    scenario's stages with a response delay, which its reply events may answer; ``arm``:
    the rows read, e.g. one variant of a ``run --events`` log), one arm of per-visitor
    flags with ``arm`` (``stage_columns`` then names the flag columns, the conversion
    flag last), otherwise an analytics funnel export."""
    if stage_map is not None:
        return read_event_log(path, stage_map, by, delayed, arm)
    if arm is not None:
        if not stage_columns or len(stage_columns) < 2:
            from funnelsim.analysis.data import DataError

            raise DataError(
                f"{path}: per-visitor flags need their stage columns and the converted "
                "column last (--stage-columns)"
            )
        return read_visitor_flags(path, stage_columns[:-1], arm, converted=stage_columns[-1])
    return read_funnel_counts(path, stage_columns, by)


def delayed_stages(scenario_path: str | PathLike[str]) -> tuple[str, ...]:
    """The stages of a scenario file's control with a response delay."""
    from funnelsim.calibration.model import control_of
    from funnelsim.scenario.loader import load_scenario

    control = control_of(load_scenario(scenario_path))
    return tuple(st.name for st in control.stages if st.response_delay_min is not None)


def calibrate_file(
    scenario_path: str | PathLike[str],
    counts: StageCounts,
    settings: SamplerSettings,
    by_position: bool,
    experiments: Sequence[str | PathLike[str]] = (),
) -> Calibration:
    """Load the scenario (its text kept for the calibrated copy) and calibrate it to
    ``counts`` and the arms of the past ``experiments`` (their YAML files)."""
    from funnelsim.calibration.experiments import read_past_experiment
    from funnelsim.calibration.fit import calibrate_counts
    from funnelsim.scenario.loader import load_scenario

    scenario = load_scenario(scenario_path)  # a file it could read and validate
    text = Path(scenario_path).read_text(encoding="utf-8")
    arms = [arm for path in experiments for arm in read_past_experiment(path, scenario)]
    return calibrate_counts(scenario, text, counts, settings, by_position, arms)


def sbc_file(
    scenario_path: str | PathLike[str],
    counts: StageCounts,
    fits: int,
    settings: SamplerSettings,
    by_position: bool,
    experiments: Sequence[str | PathLike[str]] = (),
    execution: Execution = SERIAL,
) -> SBCResult:
    """Simulation-based calibration of the scenario's calibration on data shaped as
    ``counts`` (and the experiments' arms): ``fits`` fits, seeds from ``settings.seed``,
    on ``execution``'s executor, with the same numbers on any."""
    from funnelsim.calibration.experiments import read_past_experiment
    from funnelsim.calibration.model import observed_data
    from funnelsim.calibration.sbc import simulation_based_calibration
    from funnelsim.scenario.loader import load_scenario

    scenario = load_scenario(scenario_path)
    arms = [arm for path in experiments for arm in read_past_experiment(path, scenario)]
    observed = observed_data(scenario, counts, by_position, arms)
    return simulation_based_calibration(observed, fits, settings, execution)


def write_sbc(result: SBCResult, out: Path, force: bool) -> list[Path]:
    """``sbc.json`` in ``out``, written atomically (``force`` replaces an earlier one)."""
    from funnelsim.files import output_batch, prepare_output, write_bytes_atomic

    prepare_output(out, force, (SBC_NAME,))
    out.mkdir(parents=True, exist_ok=True)
    with output_batch() as placed:
        write_bytes_atomic(out / SBC_NAME, result.json().encode("utf-8"))
    return placed


def write_calibration(calibration: Calibration, out: Path, force: bool) -> list[Path]:
    """``calibration.json``, ``posterior.nc`` and ``calibrated.yaml`` in ``out``, each
    written atomically, all or none replacing earlier results (``force``)."""
    from funnelsim.files import netcdf_bytes, output_batch, prepare_output, write_bytes_atomic

    prepare_output(out, force, OUTPUT_NAMES)
    out.mkdir(parents=True, exist_ok=True)
    contents = {
        "calibration.json": calibration.json().encode("utf-8"),
        "posterior.nc": netcdf_bytes(calibration.idata),
        "calibrated.yaml": calibration.calibrated_yaml.encode("utf-8"),
    }
    with output_batch() as placed:
        for name, data in contents.items():
            write_bytes_atomic(out / name, data)
    return placed
