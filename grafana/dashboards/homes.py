"""Assisted living, in the staff-only folder (variable ``home``): activity heatmap per home, sensors
offline and low batteries (``home_event``, ``sensor_availability`` in the events retention policy),
open events and their escalation (relational store: ``home_alerts``, ``home_alert_steps``).

No names anywhere: homes, sensors and alerts are the registry's opaque ids; who acknowledged an
event shows as the relation the escalation tells others (``neighbour``, ``staff``), never a person.
The alert state lives only in the relational store, so those panels read it through Grafana's
PostgreSQL data source with a read-only role limited to those tables (grafana/README.md).
"""

from __future__ import annotations

from grafana.panels import BuildConfig, Layout, influx, organize, sql, tag_values
from grafana.schema import Dashboard, DashboardLink, Templating, TimeRange
from vigie.registry import STAFF_LEVEL

FOLDER = "staff-only"
UID = "vigie-homes"
_H = '"home_id" =~ /^$home$/'


def build(cfg: BuildConfig) -> Dashboard:
    events = cfg.events("home_event")
    availability = cfg.events("sensor_availability")
    L = Layout()
    L.heatmap("Activity per home (motion detections)", "One row per home, one cell per interval (at least an "
              "hour): how many times its motion sensors detected someone. A row going pale is a quiet home; "
              "compare with its own past, not with the neighbours.",
              [influx(f"SELECT count(\"value\") AS \"motions\" FROM {events} WHERE \"kind\" = 'motion' AND \"value\" = 1 "
                      f'AND {_H} AND $timeFilter GROUP BY time($__interval), "home_id" fill(0)', alias="$tag_home_id")],
              unit="short", h=10, interval="1h")

    L.table("Open events", "Unusual-behaviour events not resolved yet: kind, severity, when the condition "
            "began, and who handles it (the relation, never a name). Relational store, table home_alerts.",
            [sql("SELECT household_id AS home, kind, severity, status, start, opened_at, last_seen_at, "
                 "condition_cleared_at, acknowledged_as AS handled_by FROM home_alerts "
                 "WHERE status <> 'resolved' ORDER BY opened_at DESC")],
            w=12, h=9)
    L.table("Escalation status", f"For each open event, the last escalation step taken: the caregiver level "
            f"called (staff = level {STAFF_LEVEL}), its round (repeats of the last level), when, and how many "
            f"people it reached (0: nobody reachable).",
            [sql(f"SELECT a.household_id AS home, a.kind, a.status, "
                 f"CASE WHEN s.level = {STAFF_LEVEL} THEN 'staff' ELSE 'level ' || s.level END AS reached, "
                 f"s.round, s.done_at AS last_step_at, s.notified AS people_called, "
                 f"(SELECT count(*) FROM home_alert_steps x WHERE x.home_alert_id = a.id) AS steps "
                 f"FROM home_alerts a LEFT JOIN LATERAL (SELECT level, round, done_at, notified FROM home_alert_steps "
                 f"WHERE home_alert_id = a.id ORDER BY step_no DESC LIMIT 1) s ON true "
                 f"WHERE a.status <> 'resolved' ORDER BY a.opened_at DESC")],
            w=12, h=9)

    L.timeseries("Events opened per day, by kind", "Home alerts opened per day (relational store).",
                 [sql("SELECT $__timeGroupAlias(opened_at, '1d'), kind AS metric, count(*) AS events "
                      "FROM home_alerts WHERE $__timeFilter(opened_at) GROUP BY 1, 2 ORDER BY 1", table=False)],
                 unit="none", draw="bars", stack=True, w=8, min_value=0)
    L.table("Sensors offline", "Sensors whose latest availability in the range is offline (zigbee2mqtt marks "
            "a battery device offline 25 h after its last message).",
            [influx(f'SELECT "online" FROM (SELECT last("online") AS "online" FROM {availability} WHERE {_H} '
                    f'AND $timeFilter GROUP BY "home_id", "device_id") WHERE "online" = 0 '
                    f'GROUP BY "home_id", "device_id"', table=True)],
            w=8, transformations=[organize(rename_fields={"Time": "offline since", "device_id": "sensor"},
                                           hide=["online"])])
    L.table("Low batteries (≤ 20 %)", "Sensors whose latest battery report in the range is 20 % or less.",
            [influx(f'SELECT "battery_pct" FROM (SELECT last("battery_pct") AS "battery_pct" FROM {events} WHERE {_H} '
                    f'AND $timeFilter GROUP BY "home_id", "sensor_id") WHERE "battery_pct" <= 20 '
                    f'GROUP BY "home_id", "sensor_id"', table=True)],
            w=8, sort_by="battery_pct", desc=False, unit="percent", transformations=[organize(hide=["Time"])])

    home = tag_values("home", "Home", events, "home_id", multi=True,
                      description="The home's opaque registry id.")
    return Dashboard(
        uid=UID, title="Assisted living (staff)", tags=["vigie", "homes", "staff-only"],
        description="Activity, sensors and open events of the assisted-living homes. Staff only: pseudonymous "
                    "ids, no names; the folder's permissions are set as grafana/README.md says.",
        time=TimeRange(from_="now-7d", to="now"), refresh="5m",
        templating=Templating(variables=[home]),
        links=[DashboardLink(title="Vigie dashboards", tags=["vigie"], asDropdown=True)],
        panels=L.items)
