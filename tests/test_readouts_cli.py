"""`funnelsim analyze` with the per-visitor readouts: sequential, CUPED, guardrails,
ratio metrics, segments and the planned split, from CSV, Parquet and DuckDB."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import SHARED_DATA
from funnelsim.analysis.guardrails import MetricSpec, metrics_readout
from funnelsim.analysis.sources import read_moments
from funnelsim.cli import main

pd = pytest.importorskip("pandas")
duckdb = pytest.importorskip("duckdb")
COOKIE_CATS = SHARED_DATA / "cookie_cats.csv"


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _analyze_visitors(path: Path, *args: str) -> tuple[int, str, str]:
    """``funnelsim analyze PATH --control control ARGS``."""
    return _run("analyze", str(path), "--control", "control", *args)


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def visitors_csv(tmp_path_factory) -> Path:
    """14 days, 2 arms: b converts 12% vs 10%; revenue correlated with pre_revenue
    (rho about 0.8); mobile visitors are hurt by b; b halves 7-day retention."""
    rng = np.random.default_rng(16)
    n = 28_000
    arm = np.where(np.arange(n) % 2 == 0, "control", "b")
    device = rng.choice(["desktop", "mobile"], n)
    b = arm == "b"
    rate = np.where(b, np.where(device == "mobile", 0.08, 0.16), 0.10)
    converted = rng.random(n) < rate
    orders = np.where(converted, 1 + rng.poisson(0.3, n), 0)
    pre_revenue = rng.gamma(2.0, 20.0, n)
    revenue = np.where(converted, np.round(0.8 * pre_revenue + rng.gamma(2.0, 10.0, n), 2), 0)
    frame = pd.DataFrame(
        {
            "variant": arm,
            "date": pd.to_datetime("2026-03-01") + pd.to_timedelta(np.arange(n) // 2000, "D"),
            "converted": converted,
            "revenue": revenue,
            "orders": orders,
            "pre_revenue": np.round(pre_revenue, 2),
            "device": device,
            "retained": rng.random(n) < np.where(b, 0.2, 0.4),
        }
    )
    folder = tmp_path_factory.mktemp("visitors")
    frame.to_csv(folder / "visitors.csv", index=False)
    frame.to_parquet(folder / "visitors.parquet")
    with duckdb.connect(str(folder / "visitors.db")) as connection:
        connection.register("frame", frame)
        connection.execute("CREATE TABLE events AS SELECT * FROM frame")
    return folder / "visitors.csv"


def test_sequential_prints_the_stop_and_writes_every_look(visitors_csv, tmp_path) -> None:
    code, out, err = _analyze_visitors(
        visitors_csv,
        "--sequential",
        "--out",
        str(tmp_path / "r"),
    )
    assert code == 0, err
    assert "Safe peeking on converted: always-valid 95% confidence sequences" in out
    assert "Stop at look 2026-03-" in out
    block = _results(tmp_path / "r")["sequential"]
    assert set(block) == {"converted", "revenue"}
    looks = block["converted"]["looks"]
    assert len(looks) == 14 and looks[-1]["visitors"] == 14_000
    assert "mixture SPRT" in block["converted"]["method"]
    p_values = [row["p_value"] for row in looks]
    assert p_values == sorted(p_values, reverse=True)  # running minimum
    code, verbose, _ = _run(
        "analyze", str(visitors_csv), "--sequential", "--verbose", "--control", "control"
    )
    assert verbose.count("\n  2026-03-") == 28  # every look of both metrics
    assert out.count("\n  2026-03-") < 28  # the last look and the stopping look only


def test_cuped_puts_the_adjusted_uplift_in_the_usual_keys(visitors_csv, tmp_path) -> None:
    code, out, err = _analyze_visitors(
        visitors_csv,
        "--metric",
        "revenue_per_visitor",
        "--model",
        "conjugate",
        "--covariate",
        "pre_revenue",
        "--out",
        str(tmp_path / "r"),
    )
    assert code == 0, err
    assert out.count("Variance reduction (CUPED) on revenue, adjusted for pre_revenue") == 1
    document = _results(tmp_path / "r")
    b = document["variants"]["b"]
    assert b["uplift_vs_control"]["method"].startswith("CUPED")
    assert b["uplift_vs_control"]["metric"] == "revenue"
    assert "uplift_vs_control_unadjusted" in b
    effect = document["cuped"]["variants"]["b"]
    assert effect["uplift"]["value"] == b["uplift_vs_control"]["mean"]
    assert 0 < effect["variance_reduction"] < 1
    assert effect["uplift"]["se"] < effect["unadjusted_uplift"]["se"]


def test_ratio_metric_reports_the_denominator_mismatch(visitors_csv, tmp_path) -> None:
    code, out, err = _analyze_visitors(
        visitors_csv,
        "--ratio",
        "revenue/orders,orders/converted",
        "--out",
        str(tmp_path / "r"),
    )
    assert code == 0, err
    ratios = _results(tmp_path / "r")["ratios"]
    assert [(r["numerator"], r["denominator"]) for r in ratios] == [
        ("revenue", "orders"),
        ("orders", "converted"),
    ]
    # b sells to more visitors: orders per visitor differ, so AOV compares other buyers.
    assert ratios[0]["variants"]["b"]["denominator_mismatch"]
    assert "Ratio revenue/orders" in out and "differs" in out
    bayesian = ratios[0]["bayesian"]
    assert bayesian["prob_beats_control"]["control"] == 0.5
    assert set(bayesian["ratios"]) == {"b", "control"}
    assert "P(beats" in out  # the header, wrapped
    code, _, err = _run("analyze", str(visitors_csv), "--ratio", "revenue")
    assert code == 2 and "NUMERATOR/DENOMINATOR" in err


def test_every_source_gives_the_same_guardrail_readout(visitors_csv, tmp_path) -> None:
    args = ["--control", "control", "--guardrail", "retained", "--secondary", "orders", "--json"]
    documents = {}
    for name, source in [
        ("csv", [str(visitors_csv)]),
        ("parquet", [str(visitors_csv.with_suffix(".parquet"))]),
        ("duckdb", [f"duckdb:///{visitors_csv.with_suffix('.db')}", "--table", "events"]),
    ]:
        code, out, err = _run("analyze", *source, *args)
        assert code == 0, (name, err)
        documents[name] = json.loads(out)
    monte_carlo = {"uplift_vs_control", "revenue_per_visitor"}  # seeded draws per column
    for name in ("parquet", "duckdb"):
        assert documents[name]["metrics"] == documents["csv"]["metrics"], name
        for variant, entry in documents["csv"]["variants"].items():
            found = documents[name]["variants"][variant]
            assert {k: v for k, v in found.items() if k not in monte_carlo} == {
                k: v for k, v in entry.items() if k not in monte_carlo
            }, name
            # Monte Carlo summaries: the warehouse sorts the arms, the CSV keeps their
            # order, so the seeded draws land in other columns: equal within MC error.
            for key in monte_carlo & set(entry):
                for bound, value in entry[key].items():
                    assert found[key][bound] == pytest.approx(value, rel=2e-3), (name, key)
    decision = documents["csv"]["decision"]
    assert decision["action"] == "keep_testing"
    assert decision["reason"].startswith("Ship of b blocked by guardrail retained")


def test_planned_split_feeds_the_sample_ratio_check(visitors_csv, tmp_path) -> None:
    code, out, _ = _run("analyze", str(visitors_csv), "--split", "90,10", "--json")
    document = json.loads(out)
    assert document["sample_ratio"]["planned_shares"] == [0.9, 0.1]
    assert document["sample_ratio"]["mismatch"]
    assert document["decision"]["reason"].startswith("Decision withheld")
    code, _, err = _run("analyze", str(visitors_csv), "--split", "90,x")
    assert code == 2 and err.startswith("error: --split '90,x'")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--covariate", "device"], "to DOUBLE when casting from source column device"),
        (["--guardrail", "retained:2"], "threshold in (0, 1)"),
        (["--table", "events"], "a table name applies to duckdb:///FILE sources only"),
        (["--split", "1"], "split: 1 shares for 2 variants (control, b)"),
    ],
)
def test_bad_readout_options_are_one_line(visitors_csv, args, message) -> None:
    code, _, err = _run("analyze", str(visitors_csv), *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_column_is_one_line_and_exit_two(visitors_csv) -> None:
    code, _, err = _run("analyze", str(visitors_csv), "--covariate", "pre_spend")
    assert code == 2
    assert err.strip().endswith(
        "column 'pre_spend': not found (columns: variant, date, converted, revenue, orders, "
        "pre_revenue, device, retained)"
    )
    assert len(err.strip().splitlines()) == 1


def test_segments_flag_the_segment_moving_against_the_total(visitors_csv, tmp_path) -> None:
    code, out, err = _analyze_visitors(
        visitors_csv,
        "--segment-column",
        "device",
        "--draws",
        "300",
        "--sampler",
        "pymc",
        "--out",
        str(tmp_path / "r"),
    )
    assert code == 0, err
    assert "Simpson's paradox risk: in segment mobile" in out
    block = _results(tmp_path / "r")["segments"]
    mobile = next(e for e in block["effects"] if e["segment"] == "mobile")
    assert mobile["disagrees"] and mobile["difference"]["high"] < 0
    assert block["aggregate_difference"]["b"] > 0


@pytest.mark.skipif(not COOKIE_CATS.exists(), reason="../shared/data/cookie_cats.csv absent")
def test_cookie_cats_guardrails_in_one_call(tmp_path) -> None:
    code, out, err = _run(
        "analyze",
        str(COOKIE_CATS),
        "--variant-column",
        "version",
        "--control",
        "gate_30",
        "--metric",
        "retention_7",
        "--guardrail",
        "retention_1,sum_gamerounds:0.05",
        "--out",
        str(tmp_path / "r"),
    )
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("  retention_1"))
    assert row.split()[:3] == ["retention_1", "gate_40", "0.4423"] and "-1.3%" in row
    document = _results(tmp_path / "r")
    assert document["conversion_column"] == "retention_7"
    specs = [
        MetricSpec("retention_7", "primary"),
        MetricSpec("retention_1", "guardrail"),
        MetricSpec("sum_gamerounds", "guardrail", threshold=0.05),
    ]
    moments = read_moments(str(COOKIE_CATS), "version", [s.column for s in specs])
    expected = metrics_readout(moments, specs, "gate_30")
    for found, effect in zip(document["metrics"]["effects"], expected.effects, strict=True):
        assert found["metric"] == effect.metric
        assert math.isclose(found["prob_harm"], effect.prob_harm, rel_tol=1e-12)
        assert math.isclose(found["q_value"], effect.q_value, rel_tol=1e-12)
    # The readout's own retention_7 counts equal the metrics block's (two independent
    # readers: the streaming CSV reader and DuckDB).
    gate_40 = document["variants"]["gate_40"]
    assert gate_40["conversions"] / gate_40["visitors"] == pytest.approx(
        document["metrics"]["effects"][0]["variant_mean"], rel=1e-12
    )


def test_bayesian_cuped_runs_with_the_revenue_model_and_agrees(visitors_csv, tmp_path) -> None:
    code, out, err = _analyze_visitors(
        visitors_csv,
        "--metric",
        "revenue_per_visitor",
        "--covariate",
        "pre_revenue",
        "--draws",
        "300",
        "--sampler",
        "pymc",
        "--out",
        str(tmp_path / "r"),
    )
    assert code == 0, err
    assert "PyMC linear model y ~ arm + covariates" in " ".join(out.split())
    block = _results(tmp_path / "r")["cuped"]
    frequentist = block["variants"]["b"]["uplift"]
    bayesian = block["bayesian"]["variants"]["b"]["uplift"]
    # Same linear model: the posterior mean sits on the estimate within 4 Monte Carlo
    # standard errors (4 chains x 300 draws, effective size at least a quarter of them).
    assert bayesian["mean"] == pytest.approx(
        frequentist["value"], abs=4 * frequentist["se"] / math.sqrt(300)
    )
    assert block["bayesian"]["diagnostics"]["divergences"] == 0
