"""Data where it lives: the same aggregates and readout from CSV, Parquet, pandas,
polars and a DuckDB table, computed inside each engine."""

from pathlib import Path

import numpy as np
import pytest

from funnelsim.analysis.api import analyze
from funnelsim.analysis.data import DataError
from funnelsim.analysis.guardrails import MetricSpec, metrics_readout
from funnelsim.analysis.readouts import ReadoutRequest
from funnelsim.analysis.sources import grouped_moments, read_looks, read_moments

duckdb = pytest.importorskip("duckdb")
pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")
pytest.importorskip("pyarrow")

COLUMNS = ["converted", "rounds", "revenue"]


@pytest.fixture(scope="module")
def frame() -> "pd.DataFrame":
    rng = np.random.default_rng(8)
    n = 30_000
    arm = rng.choice(["control", "b"], n)
    converted = rng.random(n) < np.where(arm == "b", 0.11, 0.10)
    return pd.DataFrame(
        {
            "variant": arm,
            "day": pd.to_datetime("2026-01-01") + pd.to_timedelta(rng.integers(0, 7, n), "D"),
            "converted": converted,
            "rounds": rng.poisson(20, n),
            "revenue": np.where(converted, np.round(rng.lognormal(3.5, 0.8, n), 2), np.nan),
        }
    )


@pytest.fixture(scope="module")
def sources(frame, tmp_path_factory) -> dict[str, object]:
    folder: Path = tmp_path_factory.mktemp("sources")
    frame.to_csv(folder / "events.csv", index=False)
    frame.to_parquet(folder / "events.parquet")
    with duckdb.connect(str(folder / "events.db")) as connection:
        connection.register("frame", frame)
        connection.execute("CREATE TABLE events AS SELECT * FROM frame")
    return {
        "csv": str(folder / "events.csv"),
        "parquet": folder / "events.parquet",
        "pandas": frame,
        "polars": pl.from_pandas(frame),
        "polars lazy": pl.from_pandas(frame).lazy(),
        "duckdb": f"duckdb:///{folder / 'events.db'}",
    }


def _read(source):
    table = "events" if isinstance(source, str) and source.startswith("duckdb") else None
    return read_moments(source, "variant", COLUMNS, table=table)


def test_every_source_gives_the_same_aggregates(frame, sources) -> None:
    grouped = frame.assign(revenue=frame.revenue.fillna(0)).groupby("variant")
    expected_sums = grouped[COLUMNS].sum().astype(float).to_numpy()
    for name, source in sources.items():
        m = _read(source)
        assert m.arms == ("b", "control"), name
        np.testing.assert_array_equal(m.count, grouped.size().to_numpy(), err_msg=name)
        # Integer and 0/1 columns: exactly equal; fractional revenue: to rounding.
        np.testing.assert_array_equal(m.sums[:, :2], expected_sums[:, :2], err_msg=name)
        np.testing.assert_array_equal(m.cross[:, :2, :2], _read(sources["pandas"]).cross[:, :2, :2])
        np.testing.assert_allclose(m.sums[:, 2], expected_sums[:, 2], rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(m.cross, _read(sources["pandas"]).cross, rtol=1e-12)


def test_every_source_gives_the_same_readout(sources) -> None:
    specs = [MetricSpec("converted", "primary"), MetricSpec("rounds", "guardrail")]
    readouts = {name: metrics_readout(_read(s), specs, "control") for name, s in sources.items()}
    reference = readouts.pop("pandas")
    for name, found in readouts.items():
        assert found == reference, name


def test_looks_are_cumulative_by_day(frame, sources) -> None:
    labels, looks = read_looks(sources["parquet"], "variant", "day", ["converted"])
    assert len(labels) == 7 and labels == sorted(labels)
    daily = frame.groupby(["day", "variant"]).size().unstack().cumsum()
    np.testing.assert_array_equal(np.array([m.count for m in looks]), daily[["b", "control"]])
    db_labels, db_looks = read_looks(sources["duckdb"], "variant", "day", ["converted"], "events")
    assert db_labels == labels
    np.testing.assert_array_equal(db_looks[-1].sums, looks[-1].sums)


def test_segments_group_inside_the_engine(sources) -> None:
    grouped = grouped_moments(sources["polars"], ["variant", "converted"], ["rounds"])
    assert [key for key in grouped.keys] == [
        ("b", "False"),
        ("b", "True"),
        ("control", "False"),
        ("control", "True"),
    ]


@pytest.mark.parametrize(
    ("source", "table", "match"),
    [
        ("csv", None, "column 'converted'"),
        ("duckdb", "nope", "nope"),
        ("duckdb", None, "name the table"),
    ],
)
def test_problems_are_one_sentence_naming_the_source(
    sources, frame, tmp_path, source, table, match
):
    if source == "csv":
        path = tmp_path / "bad.csv"
        frame.drop(columns="converted").to_csv(path, index=False)
        found = str(path)
    else:
        found = sources[source]
    with pytest.raises(DataError, match=match) as error:
        read_moments(found, "variant", COLUMNS, table=table)
    assert "\n" not in str(error.value)


def test_unknown_file_kinds_are_refused(tmp_path) -> None:
    with pytest.raises(DataError, match=r"expected a \.parquet or \.csv file"):
        read_moments(tmp_path / "events.xlsx", "variant", COLUMNS)


def test_analyze_reads_a_dataframe_where_it_lives(frame, sources) -> None:
    request = ReadoutRequest(guardrails=("rounds",))
    from_frame = analyze(frame, "control", request=request)
    from_parquet = analyze(sources["parquet"], "control", request=request)
    assert from_frame.source == "<DataFrame>"
    assert from_frame.extras.metrics == from_parquet.extras.metrics
    assert [v.conversion for v in from_frame.variants] == [
        v.conversion for v in from_parquet.variants
    ]
