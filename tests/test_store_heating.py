"""The heating schema (vigie.store.heating) on both stores (a real influxd, the embedded one): line
protocol of heating readings and device clocks, written and read back as frames (flags as 1.0/0.0,
absent fields NaN, raw policy)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from vigie.heating_registry import HeatingDeviceInfo
from vigie.records import HeatingDeviceKind, HeatingReading
from vigie.store.heating import (DEVICE_CLOCK, FIELDS, HEATING, device_clock_line, heating_line, read_device_clock,
                                 read_heating, write_heating)

T0 = datetime(2026, 1, 12, 7, 0, tzinfo=timezone.utc)
TRV = HeatingDeviceInfo("trv-0001", HeatingDeviceKind.TRV, "b-mairie", "r-conseil")
OUT = HeatingDeviceInfo("out-mairie", HeatingDeviceKind.OUTDOOR, "b-mairie", "r-conseil")
HM = HeatingDeviceInfo("hm 1,a=b", HeatingDeviceKind.HEAT_METER, "b-école", "r-salle 2")


def test_heating_line_writes_only_the_reported_fields_as_floats():
    r = HeatingReading("trv-0001", T0, temperature_c=19.5, setpoint_c=20.0, valve_pct=35, heating=True,
                       window_open=False, battery_low=None, source="zigbee2mqtt_heating")
    assert heating_line(r, TRV) == ("heating,building=b-mairie,device=trv-0001,kind=trv,room=r-conseil "
                                    "heating=1,setpoint_c=20,temperature_c=19.5,valve_pct=35,window_open=0 "
                                    f"{int(T0.timestamp())}")
    odd = heating_line(HeatingReading("hm 1,a=b", T0, energy_kwh=1234.5678), HM)
    assert odd.startswith(r"heating,building=b-école,device=hm\ 1\,a\=b,kind=heat_meter,room=r-salle\ 2 ")
    with pytest.raises(ValueError, match="carries no field"):
        heating_line(HeatingReading("trv-0001", T0), TRV)
    with pytest.raises(ValueError, match="not a finite number"):
        heating_line(HeatingReading("trv-0001", T0, temperature_c=float("nan")), TRV)


def test_device_clock_line_checks_its_inputs():
    assert device_clock_line("water", "axw1-000123", T0, -42.5) == \
        f"device_clock,device=axw1-000123,family=water offset_s=-42.5 {int(T0.timestamp())}"
    with pytest.raises(ValueError, match="family"):
        device_clock_line("gas", "m", T0, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        device_clock_line("home", "s", T0.replace(tzinfo=None), 0)
    with pytest.raises(ValueError, match="must not be empty"):
        device_clock_line("home", "", T0, 0)


def test_readings_round_trip_through_influxdb(any_store):
    readings = [(HeatingReading("trv-0001", T0 + timedelta(minutes=10 * i), temperature_c=18 + i / 10,
                                valve_pct=100 - i, heating=i % 2 == 0, window_open=i == 3), TRV) for i in range(6)]
    readings += [(HeatingReading("out-mairie", T0 + timedelta(hours=1, seconds=1), temperature_c=-3.25), OUT),
                 (HeatingReading("hm 1,a=b", T0 + timedelta(days=1, hours=2), energy_kwh=1234.5, power_w=850.0,
                                 battery_pct=80, battery_low=False), HM)]
    lines = [heating_line(r, info) for r, info in readings]
    assert write_heating(any_store, lines + lines[:2]) == 10    # two re-delivered reports overwrite themselves
    df = read_heating(any_store, T0 - timedelta(hours=1), T0 + timedelta(days=2))
    assert list(df.columns) == ["time", "device", "room", "building", "kind", *FIELDS]
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert all(isinstance(df[c].dtype, pd.CategoricalDtype) for c in ("device", "room", "building", "kind"))
    assert all(df[c].dtype == np.float64 for c in FIELDS)
    assert df["device"].tolist() == ["hm 1,a=b", "out-mairie"] + ["trv-0001"] * 6   # by device, then time
    trv = df[df["device"] == "trv-0001"]
    assert trv["time"].is_monotonic_increasing and trv["time"].iloc[0] == pd.Timestamp(T0)
    assert trv["heating"].tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert trv["window_open"].tolist() == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert trv["temperature_c"].tolist() == pytest.approx([18.0, 18.1, 18.2, 18.3, 18.4, 18.5])
    assert trv["energy_kwh"].isna().all() and trv["setpoint_c"].isna().all()
    hm = df[df["device"] == "hm 1,a=b"].iloc[0]
    assert (hm["building"], hm["room"], hm["kind"], hm["energy_kwh"], hm["battery_low"]) == \
        ("b-école", "r-salle 2", "heat_meter", 1234.5, 0.0)
    assert df[df["device"] == "out-mairie"]["time"].iloc[0] == pd.Timestamp(T0 + timedelta(hours=1, seconds=1))
    # the writes' (raw) policy holds them
    series = any_store.query_json(f'SELECT count("temperature_c") FROM "vigie_raw"."{HEATING}"')
    assert series[0]["values"][0][1] == 7
    # a window, and a building filter
    assert len(read_heating(any_store, T0, T0 + timedelta(minutes=30))) == 3
    only = read_heating(any_store, T0 - timedelta(hours=1), T0 + timedelta(days=2), buildings=["b-école"])
    assert only["device"].tolist() == ["hm 1,a=b"]


def test_empty_reads_have_the_columns_and_dtypes(any_store):
    df = read_heating(any_store, T0, T0 + timedelta(days=1))
    assert df.empty and list(df.columns) == ["time", "device", "room", "building", "kind", *FIELDS]
    assert str(df["time"].dtype) == "datetime64[ns, UTC]" and df["valve_pct"].dtype == np.float64
    clock = read_device_clock(any_store, T0, T0 + timedelta(days=1))
    assert clock.empty and list(clock.columns) == ["time", "family", "device", "offset_s"]


def test_device_clock_round_trip(any_store):
    lines = [device_clock_line("heating", "trv-0001", T0 + timedelta(hours=h), 3.0 + h) for h in range(3)]
    lines += [device_clock_line("water", "axw1-000123", T0, -400.0), device_clock_line("home", "s-1", T0, 0.25)]
    write_heating(any_store, lines)
    df = read_device_clock(any_store, T0, T0 + timedelta(days=1))
    assert [(f, d) for f, d in zip(df["family"], df["device"])] == [
        ("heating", "trv-0001")] * 3 + [("home", "s-1"), ("water", "axw1-000123")]
    assert df["offset_s"].tolist() == [3.0, 4.0, 5.0, 0.25, -400.0]
    assert df["time"].iloc[2] == pd.Timestamp(T0 + timedelta(hours=2))
    assert any_store.query_json(f'SELECT count("offset_s") FROM "vigie_raw"."{DEVICE_CLOCK}"')[0]["values"][0][1] == 5
