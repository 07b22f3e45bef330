"""Commands about scenario files: validate, init, list, explain, schema."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from funnelsim.cli.shared import EXIT_USAGE, FILE, INPUT, load_with_overrides, make_console
from funnelsim.templates import NAMES as TEMPLATE_NAMES


@click.command()
@click.argument("files", nargs=-1, required=True, type=INPUT)
def validate(files: tuple[Path, ...]) -> None:
    """Check scenario files; print a one-line summary per file."""
    from funnelsim.experiment.engines import choose_engine, compile_variants
    from funnelsim.scenario.loader import load_scenario
    from funnelsim.scenario.messages import ScenarioError

    failed = False
    for path in files:
        try:
            scenario = load_scenario(path)
        except ScenarioError as error:
            click.echo(str(error), err=True)
            failed = True
            continue
        engine = choose_engine(compile_variants(scenario))
        click.echo(
            f"{path}: ok: {scenario.name!r}, {len(scenario.stages)} stages, "
            f"{len(scenario.variants)} variants ({', '.join(scenario.variant_names)}), "
            f"{scenario.traffic.visitors_per_day:g} visitors/day x {scenario.traffic.days} days, "
            f"engine {engine}"
        )
    if failed:
        sys.exit(EXIT_USAGE)


@click.command()
@click.argument("name")
@click.option("--template", type=click.Choice(TEMPLATE_NAMES), default="checkout")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(name: str, template: str, force: bool) -> None:
    """Write a commented scenario NAME.yaml from a bundled one (funnelsim list)."""
    from funnelsim import scaffold

    path = scaffold.write_template(template, name, force)
    click.echo(f"wrote {path} from the {template} template; next: funnelsim explain {path}")


@click.command(name="list")
def list_scenarios() -> None:
    """List the bundled scenarios, one line each."""
    from funnelsim import scaffold

    infos = scaffold.templates()
    width = max(len(t.name) for t in infos)
    for info in infos:
        click.echo(
            f"{info.name:<{width}}  {info.stages} stages, {info.variants} variants  {info.summary}"
        )
    click.echo("\nStart from one: funnelsim init NAME --template TEMPLATE")


@click.command()
@click.argument("scenario_file", type=INPUT)
def explain(scenario_file: Path) -> None:
    """Draw SCENARIO_FILE's funnel: stages, friction, expected rates, load, warnings."""
    import funnelsim

    console = make_console()
    for line in funnelsim.explain(load_with_overrides(scenario_file)):
        console.print(line, highlight=False, soft_wrap=True)


@click.command()
@click.option("--markdown", is_flag=True, help="The field reference in Markdown.")
@click.option("-o", "--output", type=FILE, help="Write to this file instead of stdout.")
@click.option("--force", is_flag=True, help="Overwrite an existing --output file.")
def schema(markdown: bool, output: Path | None, force: bool) -> None:
    """Print the scenario schema: JSON Schema, or the Markdown field reference."""
    from funnelsim import files, schema_doc

    if output is not None:
        files.refuse_existing(output, force)
    text = schema_doc.markdown() if markdown else schema_doc.json_text()
    if output is None:
        click.echo(text, nl=False)
        return
    files.write_text_atomic(output, text)
    click.echo(f"wrote {output}")
