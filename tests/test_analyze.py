"""End-to-end tests of ``funnelsim analyze`` and of reading experiment files.

Small generated CSVs of both shapes check the readout against the exact conjugate
figures (deterministic quadrature, compared to 1e-9); every user mistake must end with
one ``error:`` line and exit status 2. The real public data sets of ``../shared/data``
are checked against their published counts, and skipped when the folder is absent.
"""

import doctest
import json
from pathlib import Path

import arviz as az
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import SCENARIOS, SHARED_DATA
from funnelsim.analysis import api, data
from funnelsim.analysis.data import ColumnMap, read_experiment
from funnelsim.analysis.decision import readout
from funnelsim.cli import main

COOKIE_CATS = SHARED_DATA / "cookie_cats.csv"
MARKETING = SHARED_DATA / "marketing_ab_funnel.csv"
needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason="../shared/data is not available"
)

AGGREGATED = """\
variant,visitors,cart,checkout,conversions,revenue
control,6000,2400,1200,480,24000.0
control,4000,1600,800,320,16000.0
guest,10000,4100,1400,940,47000.5
"""

PER_VISITOR_ROWS = [  # variant, cart, checkout, converted, revenue; repeated below
    ("A", "TRUE", "TRUE", "yes", "35.5"),
    ("A", "true", "FALSE", "no", ""),
    ("A", "1", "0", "0", "0"),
    ("A", "FALSE", "FALSE", "FALSE", ""),
    ("B", "TRUE", "TRUE", "TRUE", "52"),
    ("B", "yes", "yes", "1", "12.25"),
    ("B", "no", "no", "no", ""),
]


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _write(tmp_path: Path, text: str | bytes, name: str = "ab.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _per_visitor_csv(tmp_path: Path, copies: int = 40) -> Path:
    lines = ["variant,cart,checkout,converted,revenue"]
    lines += [",".join(row) for row in PER_VISITOR_ROWS] * copies
    return _write(tmp_path, "\n".join(lines) + "\n", "visitors.csv")


def _strict_json(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


# --------------------------------------------------------------------------- reading


def test_aggregated_rows_are_summed_per_variant(tmp_path: Path) -> None:
    found = read_experiment(_write(tmp_path, AGGREGATED), ColumnMap(stages=("cart", "checkout")))
    assert found.layout == "aggregated" and found.variants == ("control", "guest")
    assert found.visitors.tolist() == [10000, 10000]
    assert found.conversions.tolist() == [800, 940]
    assert found.stage_counts.tolist() == [[4000, 2000], [4100, 1400]]
    assert found.orders is not None and found.orders.total.tolist() == [40000.0, 47000.5]
    assert found.orders.log_total is None  # totals cannot give per-order statistics


def test_per_visitor_rows_give_sufficient_statistics(tmp_path: Path) -> None:
    found = read_experiment(
        _per_visitor_csv(tmp_path, copies=1), ColumnMap(stages=("cart", "checkout"))
    )
    assert found.layout == "per_visitor"
    assert found.visitors.tolist() == [4, 3] and found.conversions.tolist() == [1, 2]
    assert found.stage_counts.tolist() == [[3, 1], [2, 2]]
    orders = found.orders
    assert orders is not None and orders.log_total is not None
    assert orders.total.tolist() == [35.5, 64.25]
    assert orders.total_sq.tolist() == [35.5**2, 52**2 + 12.25**2]
    assert orders.log_total == pytest.approx([np.log(35.5), np.log(52) + np.log(12.25)])


def test_experiment_from_counts_rejects_an_increasing_funnel() -> None:
    with pytest.raises(ValueError, match="must not increase"):
        data.experiment_from_counts(["A", "B"], [100, 100], [50, 10], ["cart"], [[40], [20]])


# --------------------------------------------------------------------------- CLI


def test_analyze_aggregated_csv_matches_the_exact_readout(tmp_path: Path) -> None:
    path = _write(tmp_path, AGGREGATED)
    code, out, err = _run("analyze", str(path), "--control", "control", "--json", "-q")
    assert code == 0, err
    doc = _strict_json(out)
    exact = readout(["control", "guest"], [10000, 10000], [800, 940], "control")
    for variant in exact.variants:
        entry = doc["variants"][variant.name]
        assert entry["conversion"]["mean"] == pytest.approx(variant.conversion_mean, abs=1e-9)
        assert entry["prob_best"] == pytest.approx(variant.prob_best, abs=1e-9)
        assert entry["expected_loss"] == pytest.approx(variant.expected_loss, abs=1e-9)
        assert set(entry["uplift_vs_control"]) == {"mean", "low", "high"}
    assert doc["decision"]["action"] == exact.decision.action
    assert doc["diagnostics"] == {"reliable": True, "method": "exact Beta-Binomial posterior"}


def test_analyze_prints_a_readout_and_writes_results(tmp_path: Path) -> None:
    path = _per_visitor_csv(tmp_path)
    out_dir = tmp_path / "out"
    code, out, err = _run(
        "analyze", str(path), "--stage-columns", "cart,checkout", "--out", str(out_dir)
    )
    assert code == 0, err
    assert "P(best)" in out and "expected loss" in out and "Exact Beta-Binomial" in out
    assert f"wrote {out_dir / 'results.json'}" in out
    doc = _strict_json((out_dir / "results.json").read_text())
    assert doc["variants"]["A"]["visitors"] == 160 and doc["variants"]["B"]["conversions"] == 80
    assert "revenue_per_visitor" in doc["variants"]["B"]
    code, _, err = _run("analyze", str(path), "--out", str(out_dir))
    assert code == 2 and err.startswith("error:") and "--force" in err


def test_analyze_funnel_model_end_to_end(tmp_path: Path) -> None:
    path = _write(tmp_path, AGGREGATED)
    out_dir = tmp_path / "funnel"
    code, out, err = _run(
        "analyze",
        str(path),
        "--model",
        "funnel",
        "--stage-columns",
        "cart,checkout",
        "--draws",
        "500",
        "--seed",
        "3",
        "--out",
        str(out_dir),
        "--json",
    )
    assert code == 0, err
    doc = _strict_json(out)
    assert doc["model"] == "funnel" and isinstance(doc["diagnostics"]["reliable"], bool)
    assert doc["diagnostics"]["draws"] == 500
    guest = doc["variants"]["guest"]
    assert list(guest["stages"]) == ["cart", "checkout", "conversions"]
    # guest keeps fewer visitors at checkout (1400 of 4100 vs 2000 of 4000) and more at
    # the payment step (940 of 1400 vs 800 of 2000): both certain, checkout the largest.
    assert guest["changed_stage"]["stage"] in ("checkout", "conversions")
    assert guest["stages"]["checkout"]["prob_increase"] < 0.01
    posterior = az.from_netcdf(out_dir / "posterior.nc")
    assert posterior.posterior["stage_rate"].dims[2:] == ("variant", "stage")


def test_analyze_revenue_model_decides_on_revenue_per_visitor(tmp_path: Path) -> None:
    path = _per_visitor_csv(tmp_path)
    code, out, err = _run("analyze", str(path), "--model", "revenue", "--draws", "500", "--json")
    assert code == 0, err
    doc = _strict_json(out)
    assert doc["metric"] == "revenue_per_visitor"
    a, b = doc["variants"]["A"], doc["variants"]["B"]
    # Observed revenue per visitor: A 35.5 * 40 / 160 = 8.875, B 64.25 * 40 / 120 = 21.4.
    for entry, observed in ((a, 8.875), (b, 64.25 / 3)):
        rpv = entry["revenue_per_visitor"]
        assert rpv["low"] < observed < rpv["high"]
    assert b["prob_beats_control"] > 0.99 and b["uplift_vs_control"]["low"] > 0
    assert doc["decision"]["variant"] == "B"


@pytest.mark.parametrize(
    ("text", "args", "expected"),
    [
        ("variant,visitors,conversions\nA,100,10\nB,-5,1\n", (), "ab.csv:3: column 'visitors'"),
        (
            "variant,visitors,conversions\nA,100,10\nB,100,120\n",
            (),
            "ab.csv:3: column 'conversions': 120 conversions exceed the 100",
        ),
        ("variant,visitors\nA,100\nB,100\n", (), "ab.csv:1: column 'conversions': missing"),
        ("group,converted\nA,1\nB,0\n", (), "ab.csv:1: column 'variant': missing"),
        ("variant,converted\nA,1\nB,maybe\n", (), "ab.csv:3: column 'converted': expected TRUE"),
        ("", (), "ab.csv: empty file"),
        ("variant,converted\n", (), "ab.csv: no data rows"),
        ("variant,converted\nA,1\n", (), "only one variant"),
        ("variant,converted\nA,1\nB,0\n", ("--control", "C"), "control 'C' is not one of"),
        ("variant,converted\nA,1\nB,0\n", ("--model", "revenue"), "needs a revenue column"),
        (
            "variant,converted,revenue\nA,0,12\nB,1,3\n",
            (),
            "ab.csv:2: column 'revenue': revenue 12 for a visitor who did not convert",
        ),
        (
            "variant,s1,s2,converted\nA,0,1,0\nB,1,1,1\n",
            ("--stage-columns", "s1,s2"),
            "ab.csv:2: column 's2': visitor reached this stage but not 's1'",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, text: str, args: tuple[str, ...], expected: str
) -> None:
    code, out, err = _run("analyze", str(_write(tmp_path, text)), *args)
    assert code == 2, out
    assert err.startswith("error: ") and expected in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_non_utf8_input_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, b"variant,converted\nA,1\nB\xe9,0\n")
    code, _, err = _run("analyze", str(path))
    assert code == 2 and "ab.csv:3: not UTF-8 text" in err and err.count("\n") == 1


def test_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    code, _, err = _run("analyze", str(tmp_path / "nope.csv"))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("visitors", "conversions", "action"),
    [
        ([10_000, 10_000], [1000, 1200], "ship"),
        ([1_000_000, 1_000_000], [100_000, 100_000], "stop"),
        ([1000, 1000], [100, 105], "keep_testing"),
    ],
)
def test_decision_on_posterior_draws_follows_the_exact_rule(
    visitors: list[int], conversions: list[int], action: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Feed the revenue path exact Beta posterior draws (as if every order were worth 1):
    # its draws-based rule must reach the exact readout's decision.
    from funnelsim.analysis import models

    rng = np.random.default_rng(0)
    alpha, beta = 1 + np.array(conversions), 1 + np.array(visitors) - np.array(conversions)
    rates = rng.beta(alpha, beta, size=(2, 20_000, 2))
    idata = az.from_dict(
        posterior={"conversion": rates, "revenue_per_visitor": rates},
        sample_stats={"diverging": np.zeros((2, 20_000), dtype=bool)},
    )
    diagnostics = models.diagnose(idata, "pymc", 0.0)
    monkeypatch.setattr(models, "sample", lambda *_: models.ModelFit(idata, diagnostics))
    counts = data.experiment_from_counts(["A", "B"], visitors, conversions, revenue=conversions)
    drawn = api.analyze(counts, "A", "revenue")
    exact = readout(["A", "B"], visitors, conversions, "A")
    assert drawn.decision.action == exact.decision.action == action
    assert drawn.decision.variant == exact.decision.variant


def test_docstring_examples_run() -> None:
    assert doctest.testmod(data).failed == 0
    assert doctest.testmod(api).failed == 0


# --------------------------------------------------------------------------- real data


@needs_shared_data
def test_cookie_cats_retention_matches_the_published_figures() -> None:
    code, out, err = _run(
        "analyze",
        str(COOKIE_CATS),
        "--variant-column",
        "version",
        "--converted-column",
        "retention_1",
        "--control",
        "gate_30",
        "--json",
        "-q",
    )
    assert code == 0, err
    variants = _strict_json(out)["variants"]
    assert variants["gate_30"]["visitors"] == 44_700
    assert variants["gate_40"]["visitors"] == 45_489
    # Published day-1 retention: 44.82% (gate_30) vs 44.23% (gate_40).
    assert variants["gate_30"]["conversions"] / 44_700 == pytest.approx(0.4482, abs=5e-5)
    assert variants["gate_40"]["conversions"] / 45_489 == pytest.approx(0.4423, abs=5e-5)
    assert variants["gate_40"]["prob_beats_control"] < 0.05  # moving the gate hurt


@needs_shared_data
def test_cookie_cats_seven_day_retention_reads() -> None:
    found = read_experiment(COOKIE_CATS, ColumnMap(variant="version", converted="retention_7"))
    assert found.visitors.tolist() == [44_700, 45_489]
    assert found.conversions.tolist() == [8502, 8279]  # 19.02% vs 18.20%


@needs_shared_data
def test_marketing_funnel_reads_and_locates_the_changed_stages() -> None:
    stages = "step1,step2,step3,step4,step5"
    code, out, err = _run(
        "analyze",
        str(MARKETING),
        "--variant-column",
        "test group",
        "--stage-columns",
        stages,
        "--model",
        "funnel",
        "--draws",
        "500",
        "--json",
        "-q",
    )
    assert code == 0, err
    doc = _strict_json(out)
    a, b = doc["variants"]["a"], doc["variants"]["b"]
    assert (a["visitors"], a["conversions"], b["visitors"], b["conversions"]) == (
        2874,
        656,
        3127,
        624,
    )
    # step5 is the purchase itself (same counts as converted), so no extra stage.
    assert list(b["stages"]) == stages.split(",")
    # b loses visitors at step2 (68% vs 100% continue) and step4 (36% vs 97%).
    assert b["stages"]["step2"]["prob_increase"] < 0.001
    assert b["stages"]["step4"]["prob_increase"] < 0.001
    assert b["changed_stage"]["stage"] in ("step2", "step4")
    assert doc["decision"]["action"] == "ship" and doc["decision"]["variant"] == "a"


EVENT_HEADER = "variant,visitor,stage,outcome,revenue"


def _event_counts(path: Path) -> dict[str, dict[str, float]]:
    """Per variant, counted straight from the rows: first-stage entries, purchases (the
    last stage continued) and their order values."""
    import csv

    with path.open() as stream:
        rows = list(csv.DictReader(stream))
    order = list(dict.fromkeys(r["stage"] for r in rows))
    first, last = order[0], order[-1]
    counts: dict[str, dict[str, float]] = {}
    for r in rows:
        tally = counts.setdefault(r["variant"], {"visitors": 0, "purchases": 0, "revenue": 0})
        tally["visitors"] += r["stage"] == first
        bought = r["stage"] == last and r["outcome"] == "continued"
        tally["purchases"] += bought
        tally["revenue"] += float(r["revenue"]) if bought else 0.0
    return counts


def test_an_event_log_from_run_feeds_analyze(tmp_path: Path) -> None:
    """`run --events` rows are read as the experiment they record: first-stage entries
    are the visitors, the last stage continued the purchases with their order values."""
    events = tmp_path / "events.csv"
    code, out, err = _run(
        "run", str(SCENARIOS / "checkout.yaml"), "--replications", "1", "--days", "1",
        "--visitors-per-day", "2000", "--workers", "1", "-q", "--assumptions", "fixed",
        "--events", str(events),
    )  # fmt: skip
    assert code == 0, err
    experiment = read_experiment(events)
    expected = _event_counts(events)
    assert experiment.variants == tuple(expected)
    assert experiment.visitors.tolist() == [c["visitors"] for c in expected.values()]
    assert experiment.conversions.tolist() == [c["purchases"] for c in expected.values()]
    assert experiment.orders is not None
    np.testing.assert_allclose(experiment.orders.total, [c["revenue"] for c in expected.values()])
    assert experiment.stages == ("product", "cart", "checkout")
    code, out, err = _run("analyze", str(events), "--json")
    assert code == 0, err
    document = _strict_json(out)
    assert document["conversion_column"] == "purchased"
    assert "revenue_per_visitor" in document["variants"]["control"]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (["a,1,landing,continued,5", "a,1,buy,continued,0"], "order values on stage 'landing'"),
        (
            ["a,1,landing,continued,0", "a,1,buy,continued,9", "a,2,landing,continued,0",
             "a,2,buy,continued,0"],
            "2 purchases but 1 order values",
        ),
        (["a,1,landing,lost:rate,4"], "revenue 4 for a visitor who did not convert"),
    ],
)  # fmt: skip
def test_an_event_log_with_misplaced_order_values_is_refused(
    tmp_path: Path, rows: list[str], expected: str
) -> None:
    path = _write(tmp_path, "\n".join([EVENT_HEADER, *rows]) + "\n", "events.csv")
    code, _, err = _run("analyze", str(path))
    assert code == 2 and expected in err and err.count("\n") == 1, err
