"""Town-hall heating (variables ``building``, ``room``): temperatures against setpoints per room, valves,
daily energy per building against heating degree-days, and faults (``heating``, ``device_clock``
in InfluxDB; the analytics' open findings in the relational store).

What InfluxQL computes here:

- energy per building and local day: the sum over the building's heat meters of each register's
  non-negative increase (``energy_kwh``); buildings without heat meters show none (the analytics
  then estimate energy from valve position × radiator power, in ``vigie heating``);
- heating degree-days (DJU, French "méthode météo", base 18 °C): ``max(0, 18 − (Tn + Tx) / 2)``
  from the day's minimum and maximum of the building's outdoor sensors, written
  ``(x + abs(x)) / 2`` since InfluxQL has no two-argument max. kWh per DJU needs both series on one
  day and is left to ``vigie heating`` and the weekly report.
"""

from __future__ import annotations

from grafana.panels import (BuildConfig, Layout, influx, organize, rename, right_axis, sql, tag_values,
                            thresholds)
from grafana.schema import Dashboard, DashboardLink, Matcher, Override, Property, Templating, TimeRange

FOLDER = "vigie"
UID = "vigie-heating"
_B = '"building" =~ /^$building$/'
_R = '"room" =~ /^$room$/'


def build(cfg: BuildConfig) -> Dashboard:
    L = Layout()
    L.row("Comfort")
    dashed = Override(matcher=Matcher(id="byRegexp", options=".*setpoint"),
                      properties=[Property(id="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]})])
    L.timeseries("Temperature and setpoint per room (°C)", "Mean of the room's TRVs and room sensors "
                 "(a TRV beside its radiator reads high while heating); the setpoint dashed.",
                 [influx(f'SELECT mean("temperature_c") AS "temperature", mean("setpoint_c") AS "setpoint" '
                         f"FROM \"heating\" WHERE (\"kind\" = 'trv' OR \"kind\" = 'room_sensor') AND {_B} AND {_R} "
                         f'AND $timeFilter GROUP BY time($__interval), "room" fill(none)', alias="$tag_room $col")],
                 unit="celsius", w=24, h=9, overrides=[dashed], legend_table=True)
    L.timeseries("Valve opening per room (%)", "Mean position (or heating demand) of the room's TRVs.",
                 [influx(f"SELECT mean(\"valve_pct\") AS \"valve\" FROM \"heating\" WHERE \"kind\" = 'trv' AND {_B} "
                         f'AND {_R} AND $timeFilter GROUP BY time($__interval), "room" fill(none)', alias="$tag_room")],
                 unit="percent", min_value=0)
    L.timeseries("Setpoint minus temperature (K)", "Above 0: the room is colder than asked. Lasting hours "
                 "with the valve wide open points to a seized valve or an undersized radiator.",
                 [influx(f"SELECT mean(\"setpoint_c\") - mean(\"temperature_c\") AS \"gap\" FROM \"heating\" "
                         f"WHERE \"kind\" = 'trv' AND {_B} AND {_R} AND $timeFilter "
                         f'GROUP BY time($__interval), "room" fill(none)', alias="$tag_room")],
                 unit="celsius")

    L.row("Energy")
    L.timeseries("Daily heat energy (kWh) and degree-days (DJU) per building", "Bars: the heat meters' "
                 "register increases per local day. Line: heating degree-days, base 18 °C, from the "
                 "building's outdoor sensor. Energy that follows the DJU is weather; energy that does not "
                 "is worth a look.",
                 [influx(f'SELECT sum("kwh") AS "energy" FROM (SELECT non_negative_difference(last("energy_kwh")) '
                         f"AS \"kwh\" FROM \"heating\" WHERE \"kind\" = 'heat_meter' AND {_B} AND $timeFilter "
                         f'GROUP BY time(1d), "device", "building" {cfg.tz()}) WHERE $timeFilter '
                         f'GROUP BY time(1d), "building" fill(none) {cfg.tz()}', ref="A", alias="$tag_building kWh"),
                  influx(f'SELECT ("dju" + abs("dju")) / 2 AS "dju" FROM (SELECT 18 - (min("temperature_c") + '
                         f"max(\"temperature_c\")) / 2 AS \"dju\" FROM \"heating\" WHERE \"kind\" = 'outdoor' AND {_B} "
                         f'AND $timeFilter GROUP BY time(1d), "building" fill(none) {cfg.tz()}) GROUP BY "building"',
                         ref="B", alias="$tag_building DJU")],
                 unit="kwatth", draw="bars", w=24, h=9, min_value=0,
                 overrides=[right_axis(".* DJU", "none"),
                            Override(matcher=Matcher(id="byRegexp", options=".* DJU"),
                                     properties=[Property(id="custom.drawStyle", value="line"),
                                                 Property(id="custom.fillOpacity", value=0)])])
    L.timeseries("Heating power per building (kW)", "Sum of the building's heat meters' power.",
                 [influx(f'SELECT sum("p") / 1000 AS "power" FROM (SELECT mean("power_w") AS "p" FROM "heating" '
                         f"WHERE \"kind\" = 'heat_meter' AND {_B} AND $timeFilter GROUP BY time($__interval), "
                         f'"device", "building") WHERE $timeFilter GROUP BY time($__interval), "building" fill(none)',
                         alias="$tag_building")],
                 unit="kwatt", min_value=0)
    L.timeseries("Outdoor temperature (°C)", "The building's outdoor sensor.",
                 [influx(f"SELECT mean(\"temperature_c\") AS \"outdoor\" FROM \"heating\" WHERE \"kind\" = 'outdoor' "
                         f'AND {_B} AND $timeFilter GROUP BY time($__interval), "building" fill(none)',
                         alias="$tag_building")],
                 unit="celsius")

    L.row("Faults")
    L.timeseries("Open window reported (share of time)", "TRVs that detect an open window (Danfoss, Tuya) "
                 "close their valve for a while; heating with a window open is the analytics' "
                 "window_open_heating finding.",
                 [influx(f"SELECT mean(\"window_open\") AS \"window\" FROM \"heating\" WHERE \"kind\" = 'trv' AND {_B} "
                         f'AND {_R} AND $timeFilter GROUP BY time($__interval), "room" fill(none)', alias="$tag_room")],
                 unit="percentunit", min_value=0)
    L.table("Open heating findings", "What the daily heating pass found and nobody has resolved yet: heating "
            "with a window open, heating empty rooms, setpoints above the comfort policy, rooms that cannot "
            "reach their setpoint, energy trends (relational store, table facility_findings).",
            [sql("SELECT building_id AS building, room_id AS room, device_id AS device, label, kind, status, "
                 "start, \"end\", opened_at, last_seen_at FROM facility_findings WHERE family = 'heating' "
                 "AND status <> 'resolved' ORDER BY opened_at DESC")],
            w=12)
    L.table("Battery of each device, lowest first", "Latest battery level reported in the range (TRVs that "
            "report only a low-battery flag are in the next table).",
            [influx(f'SELECT last("battery_pct") AS "battery_pct" FROM "heating" WHERE {_B} AND $timeFilter '
                    f'GROUP BY "building", "room", "device"', table=True)],
            w=8, sort_by="battery_pct", desc=False, transformations=[organize(hide=["Time"])],
            overrides=[Override(matcher=Matcher(id="byName", options="battery_pct"),
                                properties=[Property(id="unit", value="percent"),
                                            Property(id="custom.cellOptions", value={"type": "color-background"}),
                                            Property(id="thresholds", value=thresholds(
                                                ("red", None), ("orange", 10), ("green", 25)).model_dump())])])
    L.table("Low-battery flags", "Devices whose latest report in the range raised their own low-battery flag.",
            [influx(f'SELECT "battery_low" FROM (SELECT last("battery_low") AS "battery_low" FROM "heating" '
                    f'WHERE {_B} AND $timeFilter GROUP BY "building", "room", "device") WHERE "battery_low" = 1 '
                    f'GROUP BY "building", "room", "device"', table=True)],
            w=8, transformations=[organize(hide=["battery_low"])])
    L.table("Clock offset of heating devices (s)", "A device's clock minus the time Vigie received its report, "
            "latest in the range (device_clock): a clock far off dates its reports wrongly.",
            [influx("SELECT last(\"offset_s\") AS \"offset_s\" FROM \"device_clock\" WHERE \"family\" = 'heating' "
                    "AND $timeFilter GROUP BY \"device\"", table=True)],
            w=8, sort_by="offset_s", unit="s", overrides=[rename("offset_s", "offset (s)")])

    building = tag_values("building", "Building", '"heating"', "building", multi=True)
    room = tag_values("room", "Room", '"heating"', "room", where=_B, multi=True)
    return Dashboard(
        uid=UID, title="Town-hall heating", tags=["vigie", "heating"],
        description="Temperatures, setpoints, valves, energy against degree-days and faults of the heated "
                    "public buildings (InfluxDB heating and device_clock; open findings from the relational "
                    "store).",
        time=TimeRange(from_="now-7d", to="now"), refresh="15m",
        templating=Templating(variables=[building, room]),
        links=[DashboardLink(title="Vigie dashboards", tags=["vigie"], asDropdown=True)],
        panels=L.items)
