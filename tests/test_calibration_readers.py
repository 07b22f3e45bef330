"""Readers of a team's funnel data: analytics exports, event logs, per-visitor flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from funnelsim.analysis.data import DataError
from funnelsim.calibration.readers import (
    parse_stage_map,
    read_event_log,
    read_funnel_counts,
    read_visitor_flags,
)

AB_FUNNEL = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "marketing_ab_funnel.csv"
)


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_counts_are_summed_per_breakdown_cell(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "date,segment,landing,product,checkout,purchase\n"
        "2026-11-01,mobile,1000,300,90,60\n"
        "2026-11-01,desktop,500,200,80,50\n"
        "2026-11-02,mobile,800,200,70,40\n",
    )
    counts = read_funnel_counts(path)
    assert counts.stages == ("landing", "product", "checkout")
    assert counts.breakdown == ("segment",)
    assert counts.cells == (("mobile",), ("desktop",))
    assert counts.reached.tolist() == [[1800, 500, 160, 100], [500, 200, 80, 50]]
    trials, successes = counts.transitions()
    assert trials.tolist() == [[1800, 500, 160], [500, 200, 80]]
    assert successes.tolist() == [[500, 160, 100], [200, 80, 50]]


def test_stage_columns_and_by_choose_the_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "week,device,sessions,views,carts,orders,revenue\n1,ios,100,50,10,4,300\n2,web,90,40,8,3,200\n",
    )
    counts = read_funnel_counts(path, stage_columns=["views", "carts", "orders"], by=["device"])
    assert counts.stages == ("views", "carts")
    assert counts.cells == (("ios",), ("web",))
    assert counts.reached.tolist() == [[50, 10, 4], [40, 8, 3]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "landing,cart,purchase\n100,120,5\n",
            "data.csv:2: column 'cart': 120 reached it but only 100 reached 'landing'",
        ),
        (
            "landing,cart,purchase\n100,20,5\n100,2.5,1\n",
            "data.csv:3: column 'cart': expected a whole number",
        ),
        (
            "landing,cart,purchase\n100,x,5\n",
            "data.csv:2: column 'cart': expected a count, got 'x'",
        ),
        ("landing,cart,purchase\n100,20\n", "data.csv:2: column 'purchase': missing value"),
        ("landing,cart,landing\n1,1,1\n", "data.csv:1: column 'landing': appears twice"),
        (
            "segment,landing,purchase\n,10,1\n",
            "data.csv:2: column 'segment': empty breakdown value",
        ),
        ("landing,purchase\n", "data.csv: no data rows"),
        ("", "data.csv: empty file"),
        ("date,landing\n1,5\n", "need at least two stage columns"),
    ],
)
def test_bad_counts_name_file_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError) as caught:
        read_funnel_counts(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_named_column_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "landing,purchase\n10,1\n")
    with pytest.raises(DataError, match=r"data.csv:1: column 'checkout': missing from the header"):
        read_funnel_counts(path, stage_columns=["landing", "checkout", "purchase"])


def test_not_utf8_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"landing,purchase\n10,1\n\xff9,1\n")
    with pytest.raises(DataError, match=r"data.csv:3: not UTF-8"):
        read_funnel_counts(path)


EVENTS = """visitor_id,timestamp,event,segment
v1,2026-11-01T10:00:00,page_view,mobile
v1,2026-11-01T10:02:00,add_to_cart,mobile
v1,2026-11-01T10:07:00,order,mobile
v2,2026-11-01T11:00:00,page_view,mobile
v2,2026-11-01T11:00:30,scroll,mobile
v3,2026-11-01T12:04:00,add_to_cart,desktop
v3,2026-11-01T12:00:00,page_view,desktop
v4,2026-11-01T12:00:00,page_view,desktop
v4,2026-11-01T12:10:00,order,desktop
"""


def test_event_log_counts_and_times_between_stages(tmp_path: Path) -> None:
    path = write(tmp_path, EVENTS)
    counts = read_event_log(
        path, parse_stage_map("page_view=landing,add_to_cart=cart,order=converted")
    )
    assert counts.stages == ("landing", "cart")
    assert counts.cells == (("mobile",), ("desktop",))
    # v4 ordered without a cart event: counted as having reached the cart (as analytics do)
    assert counts.reached.tolist() == [[2, 1, 1], [2, 2, 1]]
    assert counts.times is not None
    assert counts.times.transitions == (("landing", "cart"), ("cart", "converted"))
    assert counts.times.visitors.tolist() == [2, 1]  # v1 and v3 (rows out of order); v1
    np.testing.assert_allclose(counts.times.mean_min, [3.0, 5.0])
    np.testing.assert_allclose(counts.times.median_min, [3.0, 5.0])


@pytest.mark.parametrize(
    ("text", "stage_map", "message"),
    [
        (
            EVENTS.replace("v2,2026-11-01T11:00:00", "v2,yesterday"),
            "page_view=landing,order=converted",
            "data.csv:5: column 'timestamp': expected an ISO 8601",
        ),
        (
            EVENTS.replace(
                "v1,2026-11-01T10:02:00,add_to_cart,mobile",
                "v1,2026-11-01T10:02:00,add_to_cart,desktop",
            ),
            "page_view=landing,order=converted",
            "data.csv:3: column 'segment': visitor 'v1' was ('mobile',) on line 2",
        ),
        (EVENTS, "page_view=landing", "names no event for 'converted'"),
        (EVENTS, "signup=landing,paid=converted", "no event of the stage map"),
        (
            "visitor_id,event\nv1,x\n",
            "x=a,y=converted",
            "data.csv:1: column 'timestamp': missing from the header",
        ),
    ],
)
def test_bad_event_logs_name_file_line_and_column(
    tmp_path: Path, text: str, stage_map: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError) as caught:
        read_event_log(path, parse_stage_map(stage_map))
    assert message in str(caught.value)


@pytest.mark.parametrize("text", ["a", "a=", "=b", "a=b,a=c"])
def test_bad_stage_map(text: str) -> None:
    with pytest.raises(DataError, match="--stage-map"):
        parse_stage_map(text)


def test_visitor_flags_keep_one_arm(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "group,s1,s2,converted\na,1,1,TRUE\na,1,0,FALSE\nb,1,1,FALSE\na,1,1,FALSE\n",
    )
    counts = read_visitor_flags(path, ["s1", "s2"], arm=("group", "a"))
    assert counts.stages == ("s1", "s2")
    assert counts.reached.tolist() == [[3, 2, 1]]
    with pytest.raises(DataError, match="column 'group' has no value 'c'"):
        read_visitor_flags(path, ["s1", "s2"], arm=("group", "c"))


@pytest.mark.skipif(not AB_FUNNEL.exists(), reason="shared data set absent")
def test_marketing_control_arm() -> None:
    steps = [f"step{k}" for k in range(1, 6)]
    counts = read_visitor_flags(AB_FUNNEL, steps, arm=("test group", "a"))
    assert counts.reached.tolist() == [[2874, 2874, 1835, 1778, 656, 656]]
