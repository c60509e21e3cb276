"""``reading_line`` (hand-written for speed) against influxdb-client's ``Point``, the library's own
line-protocol serializer: byte-identical lines for arbitrary readings."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from influxdb_client import Point, WritePrecision

from vigie.records import MeterAlarm, MeterReading
from vigie.store.water import READING, reading_line


def point_line(r: MeterReading) -> str:
    """The ``water_reading`` schema (docs/schema.md) built with ``Point``."""
    p = Point(READING).tag("meter_id", r.meter_id).field("index_m3", float(r.index_m3))
    if r.flow_l_per_h is not None:
        p.field("flow_l_per_h", float(r.flow_l_per_h))
    if r.battery_pct is not None:
        p.field("battery_pct", float(r.battery_pct))
    if r.battery_life_y is not None:
        p.field("battery_life_y", float(r.battery_life_y))
    p.field("alarms", " ".join(r.alarms))
    if r.status_raw is not None:
        p.field("status", r.status_raw)
    p.time(int(r.time.timestamp()), WritePrecision.S)
    return p.to_line_protocol()


# Text with what line protocol escapes (space, comma, equals, quotes, backslash, CR/LF/tab) and
# beyond ASCII, as well as plain ids.
TEXT = st.one_of(
    st.text(alphabet=st.sampled_from(list(' ,="\\\n\r\tabcZ09-_é漢🚰')), max_size=20),
    st.text(max_size=30),
)
FLOAT = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6))
TIMES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=2))]))


@st.composite
def readings(draw) -> MeterReading:
    index = draw(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(0, 10**12)))
    return MeterReading(
        meter_id=draw(TEXT), time=draw(TIMES), index_m3=index,
        flow_l_per_h=draw(FLOAT), battery_pct=draw(FLOAT), battery_life_y=draw(FLOAT),
        alarms=tuple(sorted(draw(st.sets(st.sampled_from([str(a) for a in MeterAlarm]))))),
        status_raw=draw(st.one_of(st.none(), TEXT)), source="native")


@settings(max_examples=500, deadline=None)
@given(readings())
@example(MeterReading("a b,c=d\\", datetime(2026, 3, 14, 7, 42, 10, tzinfo=timezone.utc), 12.0,
                      flow_l_per_h=1e-7, battery_pct=math.nan, alarms=("BURST", "LEAK"), status_raw='x "y" \\'))
@example(MeterReading("", datetime(2026, 3, 14, tzinfo=timezone.utc), math.inf, status_raw=""))
def test_reading_line_is_byte_identical_to_influxdb_client_point(r):
    assert reading_line(r) == point_line(r)


@pytest.mark.parametrize("bad", [{"index_m3": "many"}, {"status_raw": 3}])
def test_reading_line_refuses_a_field_of_the_wrong_type(bad):
    """A non-number index or a non-text status (Point would write ``status=3i``, another field
    type than the schema's string) is an error, which the ingestor dead-letters."""
    r = MeterReading(**{"meter_id": "m", "time": datetime(2026, 3, 14, tzinfo=timezone.utc), "index_m3": 1.0,
                        **bad})
    with pytest.raises((TypeError, ValueError)):
        reading_line(r)
