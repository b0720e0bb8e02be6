"""The server-side SVG charts: well-formed, escaped, one bar per bucket, readable axes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from console.charts import Bucket, RatePoint, Series, divisions, nice_ceiling, rate_bars, sparkline, stacked_bars

SVG = "{http://www.w3.org/2000/svg}"


def parse_svg(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # noqa: S314 - the charts' own output, not untrusted input


SERIES = [Series("success", "Success", "#2e9e5b"), Series("failed", "Failed", "#d64541")]


@pytest.mark.parametrize(("value", "expected"), [(0, 1), (1, 1), (2, 2), (3, 5), (7, 10), (11, 20), (101, 200),
                                                 (480, 500)])
def test_nice_ceiling_rounds_up_to_one_two_or_five(value, expected):
    assert nice_ceiling(value) == expected


@pytest.mark.parametrize(("top", "steps"), [(1, 1), (2, 2), (5, 5), (10, 5), (20, 4), (50, 5), (200, 4)])
def test_gridlines_split_the_axis_into_whole_numbers(top, steps):
    assert divisions(top) == steps
    assert top % steps == 0


def test_stacked_bars_draw_one_segment_per_nonzero_value_and_parse_as_svg():
    buckets = [Bucket("00h", "hour 0", {"success": 3, "failed": 1}), Bucket("01h", "hour 1", {}),
               Bucket("02h", "hour 2", {"failed": 2})]
    svg = parse_svg(stacked_bars(buckets, SERIES, label="Runs"))
    titles = [title.text for title in svg.iter(f"{SVG}title")]
    assert "hour 0: 3 success" in titles and "hour 0: 1 failed" in titles
    assert "hour 1: no runs" in titles and "hour 2: 2 failed" in titles
    assert svg.get("role") == "img" and svg.get("aria-label") == "Runs"


def test_chart_text_is_escaped():
    hostile = '<script>alert("x")</script>'
    markup = stacked_bars([Bucket(hostile, hostile, {"success": 1})], SERIES, label=hostile)
    assert "<script>" not in markup
    parse_svg(markup)  # still well-formed


def test_rate_bars_colour_by_level_and_mark_days_without_runs():
    points = [RatePoint("a", "day a", 100.0, 4), RatePoint("b", "day b", None), RatePoint("c", "day c", 50.0, 2)]
    svg = parse_svg(rate_bars(points, label="Daily"))
    titles = {title.text for title in svg.iter(f"{SVG}title")}
    assert {"day a: 100% of 4 runs", "day b: no runs", "day c: 50% of 2 runs"} <= titles
    fills = [rect.get("fill") for rect in svg.iter(f"{SVG}rect")]
    assert "#2e9e5b" in fills and "#d64541" in fills


def test_sparkline_stacks_each_bucket_scaled_to_the_busiest_with_a_tooltip():
    buckets = [Bucket("00h", "00:00", {"success": 3, "failed": 1}), Bucket("01h", "01:00", {}),
               Bucket("02h", "02:00 <b>", {"success": 8})]
    root = parse_svg(sparkline(buckets, SERIES, label="Runs of <x>", width=60, height=20))
    assert root.get("width") == "60" and root.get("aria-label") == "Runs of <x>"
    bars = root.findall(f"{SVG}g")
    assert [bar.get("data-total") for bar in bars] == ["4", "0", "8"]
    assert bars[0].find(f"{SVG}title").text == "00:00: 4 runs (3 success, 1 failed)"
    assert bars[1].find(f"{SVG}title").text == "01:00: 0 runs"
    assert bars[2].find(f"{SVG}title").text == "02:00 <b>: 8 runs (8 success)"
    heights = [float(rect.get("height")) for rect in bars[0].findall(f"{SVG}rect")]
    assert heights == pytest.approx([19 * 3 / 8, 19 * 1 / 8], abs=0.05)
    assert float(bars[2].find(f"{SVG}rect").get("height")) == 19  # the busiest bucket fills the height
