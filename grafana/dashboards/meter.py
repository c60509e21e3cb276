"""One meter (variable ``meter``): hourly consumption with the leak-check results as annotations, the
index, the night flow and daily volume the checks measured, the checks and the meter's own flags."""

from __future__ import annotations

from grafana.panels import BuildConfig, Layout, bars, influx, influx_annotation, rename, right_axis, tag_values
from grafana.schema import Annotations, Dashboard, DashboardLink, Templating, TimeRange

FOLDER = "vigie"
UID = "vigie-meter"
_METER = "\"meter_id\" = '$meter'"


def build(cfg: BuildConfig) -> Dashboard:
    checks = cfg.aggregates("leak_check")
    L = Layout()
    L.timeseries("Hourly consumption (L)", "Index increase of each hour. Red markers: the days a leak rule "
                 "flagged this meter (hover for the rule and the evidence).",
                 [influx(f'SELECT non_negative_difference(last("index_m3")) * 1000 AS "consumption" '
                         f'FROM "water_reading" WHERE {_METER} AND $timeFilter GROUP BY time(1h) fill(none)',
                         alias="consumption (L)")],
                 unit="litre", draw="bars", w=24, h=9, min_value=0)
    L.timeseries("Index (m³)", "The meter's register as read.",
                 [influx(f'SELECT last("index_m3") AS "index" FROM "water_reading" WHERE {_METER} AND $timeFilter '
                         f'GROUP BY time($__interval) fill(none)', alias="index (m³)")],
                 unit="m3", w=12)
    L.timeseries("Night flow and daily volume", "What the J+1 check measured each local day: mean flow "
                 "02:00–05:00 (L/h, a flow that never stops points to a leak) and the day's volume (L).",
                 [influx(f'SELECT mean("night_flow_l_per_h") AS "night flow" FROM {checks} WHERE {_METER} '
                         f"AND \"rule\" = 'continuous_flow' AND $timeFilter GROUP BY time(1d) fill(none) {cfg.tz()}",
                         ref="A", alias="night flow (L/h)"),
                  influx(f'SELECT mean("volume_l") AS "volume" FROM {checks} WHERE {_METER} '
                         f"AND \"rule\" = 'continuous_flow' AND $timeFilter GROUP BY time(1d) fill(none) {cfg.tz()}",
                         ref="B", alias="daily volume (L)")],
                 unit="litreh", w=12, overrides=[right_axis("daily volume.*", "litre"), bars("daily volume.*")])
    L.table("Leak checks", "Every rule's result per local day (leak, ok, insufficient_data), newest first.",
            [influx(f'SELECT "rule", "status", "rate_l_per_h", "night_flow_l_per_h", "volume_l", "coverage", "detail" '
                    f'FROM {checks} WHERE {_METER} AND $timeFilter ORDER BY time DESC', table=True)],
            w=16, h=9, overrides=[rename("rate_l_per_h", "rate (L/h)"), rename("night_flow_l_per_h", "night flow (L/h)"),
                                  rename("volume_l", "volume (L)")])
    L.table("Meter flags", "Readings where the meter itself raised a flag, with its own status text.",
            [influx(f"SELECT \"alarms\", \"status\" FROM \"water_reading\" WHERE {_METER} AND \"alarms\" != '' "
                    f"AND $timeFilter ORDER BY time DESC LIMIT 200", table=True)],
            w=8, h=9)

    meter = tag_values("meter", "Meter", '"water_reading"', "meter_id",
                       description="The meter's id as it sends it (no household data here).")
    leaks = influx_annotation("Leak checks", f"SELECT \"detail\", \"rule\" FROM {checks} WHERE {_METER} "
                                             f"AND \"status\" = 'leak' AND $timeFilter", text="detail", tags="rule")
    return Dashboard(
        uid=UID, title="Water meter", tags=["vigie", "water"],
        description="One meter's consumption, index and leak checks.",
        time=TimeRange(from_="now-7d", to="now"), refresh="15m",
        templating=Templating(variables=[meter]), annotations=Annotations(queries=[leaks]),
        links=[DashboardLink(title="Vigie dashboards", tags=["vigie"], asDropdown=True, includeVars=False)],
        panels=L.items)
