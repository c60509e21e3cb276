"""Water network: the fleet's daily consumption, leak-check results, top consumers and silent meters
(``water_reading`` and ``leak_check``, docs/schema.md).

Consumption is the sum of each meter's non-negative index increases between buckets
(``non_negative_difference(last(index_m3))``): a register roll-over or a replaced meter (the index
falls) counts nothing for that bucket instead of a huge negative or positive figure.
"""

from __future__ import annotations

from grafana.panels import BuildConfig, Layout, influx, organize, rename, thresholds
from grafana.schema import Dashboard, DashboardLink, Matcher, Override, Property, TimeRange

FOLDER = "vigie"
UID = "vigie-water-network"

# Per-meter hourly consumption (m³) in the range; the building block of the totals below.
_HOURLY = ('SELECT non_negative_difference(last("index_m3")) AS "d" FROM "water_reading" '
           'WHERE $timeFilter GROUP BY time(1h), "meter_id"')
# Readings per hour of each meter, averaged over the last 24 hourly buckets of the range (fill(0):
# a meter that stopped still has its buckets, at 0). 0 = no reading for 24 h.
_RECENT = ('SELECT last("ma") AS "readings_per_hour" FROM (SELECT moving_average(count("index_m3"), 24) AS "ma" '
           'FROM "water_reading" WHERE $timeFilter GROUP BY time(1h), "meter_id" fill(0)) GROUP BY "meter_id"')


def meter_link() -> Override:
    """A ``meter_id`` cell opens the one-meter dashboard on that meter, same time range."""
    return Override(matcher=Matcher(id="byName", options="meter_id"), properties=[Property(id="links", value=[
        {"title": "Open this meter", "url": "/d/vigie-meter/?var-meter=${__value.raw}&${__url_time_range}"}])])


def build(cfg: BuildConfig) -> Dashboard:
    checks = cfg.aggregates("leak_check")
    L = Layout()
    L.stat("Meters reporting", "Meters with at least one reading in the time range.",
           [influx('SELECT count("index_m3") FROM (SELECT last("index_m3") AS "index_m3" FROM "water_reading" '
                   'WHERE $timeFilter GROUP BY "meter_id")')], steps=thresholds(("blue", None)))
    L.stat("Meters with a leak result", "Meters that at least one leak rule flagged (status leak) on a day "
           "of the range: the J+1 check's results. Whether the resident was told and answered is the "
           "alert's lifecycle, in the API (`/alerts`).",
           [influx(f'SELECT count("status") FROM (SELECT last("status") AS "status" FROM {checks} '
                   f"WHERE \"status\" = 'leak' AND $timeFilter GROUP BY \"meter_id\")")],
           steps=thresholds(("green", None), ("red", 1)))
    L.stat("Silent meters (24 h)", "Meters that reported in the range but sent nothing in its last 24 hours "
           "(needs a range longer than a day).",
           [influx(f'SELECT count("readings_per_hour") FROM ({_RECENT}) WHERE "readings_per_hour" = 0')],
           steps=thresholds(("green", None), ("orange", 1)))
    L.stat("Water used (m³)", "Total consumption of every meter over the range.",
           [influx(f'SELECT sum("d") FROM ({_HOURLY})')], unit="m3", steps=thresholds(("blue", None)))

    L.timeseries("Daily consumption (m³)", "All meters, per local day: the sum of each meter's index "
                 "increase since the previous day (the first day of the range has no previous day).",
                 [influx(f'SELECT sum("d") AS "consumption" FROM (SELECT non_negative_difference(last("index_m3")) '
                         f'AS "d" FROM "water_reading" WHERE $timeFilter GROUP BY time(1d), "meter_id" {cfg.tz()}) '
                         f'WHERE $timeFilter GROUP BY time(1d) fill(none) {cfg.tz()}', alias="consumption")],
                 unit="m3", draw="bars", min_value=0)
    L.timeseries("Meters flagged per day and rule", "Leak-check results with status leak, per local day and "
                 "rule (continuous_flow, burst, abnormal_consumption, meter_flag).",
                 [influx(f"SELECT count(\"status\") AS \"meters\" FROM {checks} WHERE \"status\" = 'leak' AND "
                         f'$timeFilter GROUP BY time(1d), "rule" fill(none) {cfg.tz()}', alias="$tag_rule")],
                 unit="none", draw="bars", stack=True, min_value=0)

    L.table("Leak results, newest first", "Every leak-check result with status leak in the range: rule, its "
            "rate, the 02:00–05:00 night flow, the day's volume, the day's reading coverage and the evidence.",
            [influx(f'SELECT "meter_id", "rule", "rate_l_per_h", "night_flow_l_per_h", "volume_l", "coverage", '
                    f"\"detail\" FROM {checks} WHERE \"status\" = 'leak' AND $timeFilter ORDER BY time DESC "
                    f"LIMIT 500", table=True)],
            w=14, h=9, overrides=[meter_link(), rename("rate_l_per_h", "rate (L/h)"),
                                  rename("night_flow_l_per_h", "night flow (L/h)"), rename("volume_l", "volume (L)")])
    L.table("Top 10 consumers (m³)", "Meters that used the most water over the range.",
            [influx(f'SELECT top("m3", "meter_id", 10) AS "m3" FROM (SELECT sum("d") AS "m3" FROM ({_HOURLY}) '
                    f'GROUP BY "meter_id")', table=True)],
            w=10, h=9, sort_by="m3", unit="m3", overrides=[meter_link()], transformations=[organize(hide=["Time"])])

    L.table("Silent meters", "Meters with readings in the range but none in its last 24 hours: radio loss, "
            "a dead battery, a gateway down. Their last reading is in the table beside.",
            [influx(f'SELECT "readings_per_hour" FROM ({_RECENT}) WHERE "readings_per_hour" = 0 '
                    f'GROUP BY "meter_id"', table=True)],
            w=8, h=9, overrides=[meter_link()], transformations=[organize(hide=["Time", "readings_per_hour"])])
    L.table("Last reading of each meter, oldest first", "When each meter last reported within the range, and "
            "its index (m³).",
            [influx('SELECT last("index_m3") AS "index_m3" FROM "water_reading" WHERE $timeFilter '
                    'GROUP BY "meter_id"', table=True)],
            w=8, h=9, sort_by="Time", desc=False, overrides=[meter_link(), rename("index_m3", "index (m³)")])
    L.table("Meter flags", "Readings carrying a flag of the meter itself (LEAK, BURST, REVERSE_FLOW, DRY, "
            "TAMPER, LOW_BATTERY, BLOCKED, OVERFLOW, ERROR), newest first.",
            [influx("SELECT \"meter_id\", \"alarms\" FROM \"water_reading\" WHERE \"alarms\" != '' AND $timeFilter "
                    "ORDER BY time DESC LIMIT 200", table=True)],
            w=8, h=9, overrides=[meter_link()])

    return Dashboard(
        uid=UID, title="Water network", tags=["vigie", "water"],
        description="Daily consumption, leak-check results, top consumers and silent meters of the commune's "
                    "water meters (InfluxDB water_reading and leak_check).",
        time=TimeRange(from_="now-30d", to="now"), refresh="15m",
        links=[DashboardLink(title="Vigie dashboards", tags=["vigie"], asDropdown=True)],
        panels=L.items)
