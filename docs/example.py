# %% [markdown]
# # funnelsim from a notebook
#
# A short, runnable tour of the library (the test suite runs this file). Every
# command of the `funnelsim` CLI is one call here. Run it cell by cell in an
# editor that understands `# %%` cells, or as `python docs/example.py`.

# %%
from pathlib import Path

import funnelsim
from funnelsim import html_report, scaffold

ROOT = Path(__file__).resolve().parents[1]

# %% [markdown]
# ## Load a scenario and look at it before simulating
# `load_scenario` validates the file (errors name the file, line and field).
# `with_overrides` changes fields by dotted path; here a short test for speed.

# %%
scenario = funnelsim.load_scenario(ROOT / "scenarios" / "page_speed.yaml")
scenario = scenario.with_overrides({"traffic.days": 2})
print(scenario.variant_names)

expected = scaffold.expected_funnel(scenario)
for stage in expected.stages:
    print(f"{stage.name:<10} reach {stage.reaching:6.1%}  continue {stage.continue_rate:6.1%}")
print(f"expected conversion {expected.conversion:.2%}")

# %% [markdown]
# ## Simulate every variant on the same visitors
# The result prints readably; `to_frame()` gives one row per variant and
# `to_dict()` the `results.json` document.

# %%
result = funnelsim.run(scenario, 5, funnelsim.Execution(seed=1))
print(result)

frame = result.to_frame()
print(frame[["conversion_mean", "uplift_conversion_mean", "decision"]])
assert frame.loc["faster_mobile", "uplift_conversion_mean"] > 0

document = result.to_dict()
print(sorted(document["variants"]["control"]))

# %% [markdown]
# ## A report to share
# One self-contained HTML file; pass a folder to also get every figure as PNG.

# %%
import tempfile  # noqa: E402

with tempfile.TemporaryDirectory() as folder:
    report = html_report.experiment_report(result)
    written = html_report.write_report(report, Path(folder) / "report.html")
    print(f"report: {written[0].stat().st_size / 1e6:.1f} MB, {len(report.figures)} figures")
