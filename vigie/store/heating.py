"""The town-hall heating schema in InfluxDB (documented in docs/schema.md), in the writes' (raw)
retention policy, precision s.

- measurement ``heating``: one point per device report (:class:`~vigie.records.HeatingReading`);
  tags ``building``, ``device``, ``kind``, ``room`` (registry ids and the
  :class:`~vigie.records.HeatingDeviceKind` value); fields — only those the report carries, all
  **float** so Grafana and InfluxQL can average them, flags as 1.0/0.0: ``temperature_c``,
  ``setpoint_c`` (°C), ``valve_pct`` (%), ``heating``, ``window_open``, ``occupied`` (flags),
  ``power_w`` (W), ``energy_kwh`` (kWh, cumulative register), ``battery_pct`` (%),
  ``battery_low`` (flag); timestamp = the report's time. Same device and second = same point
  (a re-delivered report overwrites itself; two reports within one second keep the last).
- measurement ``device_clock``: a device's clock offset, written by the ingestor at most hourly
  per device (or when it moved); tags ``family`` (water|home|heating), ``device``; field
  ``offset_s`` (float, device time − reception time, s); timestamp = reception time.

:func:`read_heating` and :func:`read_device_clock` read a period back as frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from vigie.records import HeatingReading
from vigie.store.influx import InfluxStore, quote_ident, quote_str, time_literal

HEATING = "heating"
DEVICE_CLOCK = "device_clock"
#: The reading fields stored, in line-protocol (sorted) order; flags are stored as 1.0/0.0.
FIELDS = ("battery_low", "battery_pct", "energy_kwh", "heating", "occupied", "power_w", "setpoint_c",
          "temperature_c", "valve_pct", "window_open")
FLAGS = frozenset({"battery_low", "heating", "occupied", "window_open"})
TAGS = ("device", "room", "building", "kind")
CLOCK_FAMILIES = frozenset({"water", "home", "heating"})
#: A read is split into slices of this length: one slice's CSV answer is held in memory at a time.
READ_SLICE = timedelta(days=1)

# Line-protocol tag escapes (as influxdb-client's Point and vigie.store.water apply them).
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _tag(name: str, value: str) -> str:
    if not value:
        raise ValueError(f"tag {name} must not be empty")
    text = str(value).translate(_TAG_ESCAPES)
    return text + " " if text.endswith("\\") else text


def _float(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _seconds(t: datetime) -> int:
    # Integer arithmetic: a float timestamp may round a second down.
    return (t - _EPOCH) // timedelta(seconds=1)


def heating_line(reading: HeatingReading, info) -> str:
    """One report as a ``heating`` line-protocol line (precision s). ``info`` is the device's
    :class:`~vigie.heating_registry.HeatingDeviceInfo` (building, room, kind tags).

    Raises ValueError when the reading carries no field, a number is not finite, or an id is
    empty (nothing to store, or a point InfluxDB would refuse)."""
    fields = []
    for name in FIELDS:
        value = getattr(reading, name)
        if value is None:
            continue
        if name in FLAGS:
            fields.append(f"{name}={'1' if value else '0'}")
            continue
        x = float(value)
        if not math.isfinite(x):
            raise ValueError(f"heating reading of {reading.device_id}: {name} {value!r} is not a finite number")
        fields.append(f"{name}={_float(x)}")
    if not fields:
        raise ValueError(f"heating reading of {reading.device_id} carries no field")
    tags = (f"building={_tag('building', info.building_id)},device={_tag('device', reading.device_id)},"
            f"kind={_tag('kind', str(info.kind))},room={_tag('room', info.room_id)}")
    return f"{HEATING},{tags} {','.join(fields)} {_seconds(reading.time)}"


def device_clock_line(family: str, device: str, time: datetime, offset_s: float) -> str:
    """One clock observation as a ``device_clock`` line (precision s): ``family`` water|home|heating,
    ``device`` the registry id (meter, sensor or heating device), ``time`` aware reception time,
    ``offset_s`` device time − reception time, s. Raises ValueError for another family, an empty
    id, a naive time or a non-finite offset."""
    if family not in CLOCK_FAMILIES:
        raise ValueError(f"device_clock family must be one of {', '.join(sorted(CLOCK_FAMILIES))}, got {family!r}")
    if time.tzinfo is None:
        raise ValueError("device_clock time must be timezone-aware")
    x = float(offset_s)
    if not math.isfinite(x):
        raise ValueError(f"device_clock offset of {device} is not a finite number: {offset_s!r}")
    return f"{DEVICE_CLOCK},device={_tag('device', device)},family={family} offset_s={_float(x)} {_seconds(time)}"


def write_heating(store: InfluxStore, lines: Sequence[str], batch: int = 5000) -> int:
    """Write ``heating`` / ``device_clock`` lines to the writes' policy (``batch`` per request);
    returns the lines written. The ingestor writes through its spool instead (tools, tests)."""
    for i in range(0, len(lines), batch):
        store.write_lines(lines[i:i + batch], precision="s")
    return len(lines)


def read_heating(store: InfluxStore, start: datetime, end: datetime,
                 buildings: Sequence[str] | None = None) -> pd.DataFrame:
    """Reports with ``start <= time < end`` (optionally of ``buildings`` only) as a frame sorted by
    device, then time.

    Columns: ``time`` (datetime64[ns, UTC]), ``device``, ``room``, ``building``, ``kind``
    (categoricals of str, categories sorted), then every field of :data:`FIELDS` (float64, NaN when
    the report did not carry it; flags 1.0/0.0). Read in :data:`READ_SLICE` slices as chunked CSV.
    """
    where = ""
    if buildings:
        where = " AND (" + " OR ".join(f"building = {quote_str(b)}" for b in buildings) + ")"
    select = ", ".join(quote_ident(c) for c in (*TAGS, *FIELDS))
    parts = _read_slices(store, f"SELECT {select} FROM {quote_ident(HEATING)}", where, start, end, TAGS)
    columns = ["time", *TAGS, *FIELDS]
    if not parts:
        return _empty(columns, TAGS)
    df = _frame(parts, TAGS, FIELDS)
    return df.sort_values(["device", "time"], kind="stable", ignore_index=True)[columns]


def read_device_clock(store: InfluxStore, start: datetime, end: datetime) -> pd.DataFrame:
    """Clock observations with ``start <= time < end``: columns ``time`` (datetime64[ns, UTC]),
    ``family``, ``device`` (categoricals of str), ``offset_s`` (float64, s); sorted by family,
    device, time."""
    tags = ("family", "device")
    parts = _read_slices(store, f"SELECT family, device, offset_s FROM {quote_ident(DEVICE_CLOCK)}", "",
                         start, end, tags)
    columns = ["time", *tags, "offset_s"]
    if not parts:
        return _empty(columns, tags)
    df = _frame(parts, tags, ("offset_s",))
    return df.sort_values(["family", "device", "time"], kind="stable", ignore_index=True)[columns]


def _read_slices(store: InfluxStore, select: str, where: str, start: datetime, end: datetime,
                 tags: Sequence[str]) -> list[pd.DataFrame]:
    parts = []
    t = start
    while t < end:
        t_next = min(t + READ_SLICE, end)
        q = f"{select} WHERE time >= {time_literal(t)} AND time < {time_literal(t_next)}{where}"
        df = store.query_csv(q, epoch="s", dtypes={c: "category" for c in tags})
        if not df.empty:
            parts.append(df)
        t = t_next
    return parts


def _frame(parts: list[pd.DataFrame], tags: Sequence[str], fields: Sequence[str]) -> pd.DataFrame:
    out: dict[str, object] = {}
    times = np.concatenate([p["time"].to_numpy(np.int64) for p in parts])
    out["time"] = pd.to_datetime(times, unit="s", utc=True).as_unit("ns")
    for c in tags:
        cat = union_categoricals([p[c] if c in p else pd.Categorical([None] * len(p)) for p in parts])
        out[c] = cat.set_categories(sorted(cat.categories))
    n = len(times)
    for c in fields:
        # A field no stored report of a slice carries is missing from that slice's answer.
        out[c] = np.concatenate([p[c].to_numpy(np.float64) if c in p else np.full(len(p), np.nan)
                                 for p in parts]) if n else np.array([], np.float64)
    return pd.DataFrame(out)


def _empty(columns: Sequence[str], tags: Sequence[str]) -> pd.DataFrame:
    data = {}
    for c in columns:
        if c == "time":
            data[c] = pd.Series(pd.DatetimeIndex([], tz="UTC").as_unit("ns"))
        elif c in tags:
            data[c] = pd.Series(pd.Categorical([], categories=pd.Index([], dtype=object)))
        else:
            data[c] = pd.Series(dtype=np.float64)
    return pd.DataFrame(data)
