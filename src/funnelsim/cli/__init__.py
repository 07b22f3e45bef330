"""The ``funnelsim`` command line: parse options, call the library, present.

Every command is a call to the Python API (:mod:`funnelsim`) followed by its
presentation; the commands live by theme in this package (``scenarios``, ``simulate``,
``studies``, ``readouts``, ``calibrate``) over what they share (``shared``). A library error
(:class:`~funnelsim.errors.FunnelsimError`) is shown once, by the command group
(``group``): one line, with the option that caused it, exit status 2. Heavy libraries
(NumPy, SciPy, PyMC, Dask) load inside the commands, so ``funnelsim --help`` stays
instant.
"""

from __future__ import annotations

import click

from funnelsim.cli.calibrate import calibrate
from funnelsim.cli.group import Commands, error_line
from funnelsim.cli.readouts import analyze
from funnelsim.cli.scenarios import explain, init, list_scenarios, schema, validate
from funnelsim.cli.simulate import run, sensitivity
from funnelsim.cli.studies import bench, plan, sweep
from funnelsim.templates import NAMES as TEMPLATE_NAMES

__all__ = ["TEMPLATE_NAMES", "error_line", "main"]

SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}


@click.group(cls=Commands, context_settings=SETTINGS)
@click.version_option(package_name="funnelsim")
def main() -> None:
    """Simulate funnel changes before you spend traffic on them.

    Conversion, revenue and CLV per visitor for each variant of a scenario,
    and what an A/B test of the planned size would conclude.
    """


for command in (validate, init, list_scenarios, explain, schema, run, sensitivity):
    main.add_command(command)
for command in (sweep, plan, bench, analyze, calibrate):
    main.add_command(command)
