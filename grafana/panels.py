"""Builders for the dashboards: data source references, queries, panels placed on Grafana's
24-column grid, template variables and annotations — each returns a :mod:`grafana.schema` model,
so what a dashboard module writes is checked when it is built.

A dashboard module asks a :class:`Layout` for panels in reading order (``layout.timeseries(...)``,
``layout.row(...)``); the layout fills rows left to right, wraps at 24 columns and numbers the
panels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grafana.schema import (DATASOURCES, Annotation, BarGaugeOptions, DatasourceRef, FieldColor, FieldConfig,
                            FieldDefaults, GridPos, HeatmapOptions, HeatmapYAxis, InfluxAnnotationTarget, InfluxTarget,
                            Legend, Matcher, Override, Panel, PromTarget, Property, QueryVariable, ReduceOptions, Row,
                            SortBy, SqlTarget, StatOptions, TableOptions, Target, TextOptions, Thresholds,
                            ThresholdStep, TimeseriesOptions, Tooltip, Transformation)

INFLUX = DatasourceRef(type=DATASOURCES["vigie-influxdb"], uid="vigie-influxdb")
POSTGRES = DatasourceRef(type=DATASOURCES["vigie-postgres"], uid="vigie-postgres")
PROMETHEUS = DatasourceRef(type=DATASOURCES["vigie-prometheus"], uid="vigie-prometheus")


@dataclass(frozen=True)
class BuildConfig:
    """What the dashboards depend on in a deployment: ``timezone`` (the commune's, ``VIGIE_TIMEZONE``:
    daily buckets start at its local midnight, InfluxQL ``tz()``), and the retention policies of
    the aggregates and events (``VIGIE_INFLUX_AGGREGATES_POLICY``, ``VIGIE_INFLUX_EVENTS_POLICY``);
    raw measurements are read unqualified, from the database's default policy."""

    timezone: str = "Europe/Paris"
    aggregates_policy: str = "vigie_aggregates"
    events_policy: str = "vigie_events"

    def tz(self) -> str:
        """The InfluxQL ``tz()`` clause of daily buckets."""
        return f"tz('{self.timezone}')"

    def aggregates(self, measurement: str) -> str:
        return f'"{self.aggregates_policy}"."{measurement}"'

    def events(self, measurement: str) -> str:
        return f'"{self.events_policy}"."{measurement}"'


# --- queries ------------------------------------------------------------------------------------

def influx(query: str, ref: str = "A", *, table: bool = False, alias: str | None = None) -> InfluxTarget:
    """A raw InfluxQL query (``$timeFilter``, ``$__interval`` and ``$variables`` expanded by Grafana)."""
    return InfluxTarget(refId=ref, datasource=INFLUX, query=" ".join(query.split()),
                        resultFormat="table" if table else "time_series", alias=alias)


def sql(raw: str, ref: str = "A", *, table: bool = True) -> SqlTarget:
    """A raw SQL query on the relational store (``$__timeFilter(column)`` and the other macros)."""
    return SqlTarget(refId=ref, datasource=POSTGRES, rawSql=" ".join(raw.split()),
                     format="table" if table else "time_series")


def prom(expr: str, legend: str, ref: str = "A") -> PromTarget:
    """A PromQL range query on the metrics Vigie's ``/metrics`` exposes."""
    return PromTarget(refId=ref, datasource=PROMETHEUS, expr=" ".join(expr.split()), legendFormat=legend)


def tag_values(name: str, label: str, measurement: str, key: str, *, where: str = "", multi: bool = False,
               description: str = "") -> QueryVariable:
    """A variable listing the values of tag ``key`` (InfluxQL ``SHOW TAG VALUES``); ``multi`` also
    offers "All". ``where``: a predicate on other tags (``"building" =~ /^$building$/``)."""
    query = f'SHOW TAG VALUES FROM {measurement} WITH KEY = "{key}"' + (f" WHERE {where}" if where else "")
    return QueryVariable(name=name, label=label, description=description, datasource=INFLUX, query=query,
                         definition=query, includeAll=multi, multi=multi)


def influx_annotation(name: str, query: str, *, text: str, tags: str = "", color: str = "red") -> Annotation:
    """Markers from InfluxQL rows: ``text`` and ``tags`` name columns of the query."""
    return Annotation(name=name, datasource=INFLUX, iconColor=color,
                      target=InfluxAnnotationTarget(query=" ".join(query.split()), textColumn=text, tagsColumn=tags))


# --- field config helpers -----------------------------------------------------------------------

def thresholds(*steps: tuple[str, float | None]) -> Thresholds:
    """``("green", None), ("red", 1)``: colour from each value up (the first step has no value)."""
    return Thresholds(steps=[ThresholdStep(color=c, value=v) for c, v in steps])


def rename(field_name: str, display: str) -> Override:
    return Override(matcher=Matcher(id="byName", options=field_name),
                    properties=[Property(id="displayName", value=display)])


def unit_of(field_name: str, unit: str) -> Override:
    return Override(matcher=Matcher(id="byName", options=field_name), properties=[Property(id="unit", value=unit)])


def right_axis(pattern: str, unit: str) -> Override:
    """Series matching ``pattern`` (regex on display names) on a right-hand axis in ``unit``."""
    return Override(matcher=Matcher(id="byRegexp", options=pattern),
                    properties=[Property(id="custom.axisPlacement", value="right"), Property(id="unit", value=unit)])


def bars(pattern: str) -> Override:
    return Override(matcher=Matcher(id="byRegexp", options=pattern),
                    properties=[Property(id="custom.drawStyle", value="bars"),
                                Property(id="custom.fillOpacity", value=60)])


# --- layout ---------------------------------------------------------------------------------------

@dataclass
class Layout:
    """Places panels on the grid in reading order and gives them ids (1, 2, …)."""

    items: list[Panel | Row] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _row_h: int = 0
    _next_id: int = 1

    def _pos(self, w: int, h: int) -> GridPos:
        if self._x + w > 24:
            self._newline()
        pos = GridPos(x=self._x, y=self._y, w=w, h=h)
        self._x += w
        self._row_h = max(self._row_h, h)
        return pos

    def _newline(self) -> None:
        if self._x:
            self._y += self._row_h
        self._x, self._row_h = 0, 0

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def row(self, title: str) -> None:
        self._newline()
        self.items.append(Row(id=self._id(), title=title, gridPos=GridPos(x=0, y=self._y, w=24, h=1)))
        self._y += 1

    def _panel(self, kind: str, title: str, description: str, targets: list[Target], options, w: int, h: int,
               defaults: FieldDefaults, overrides: list[Override], transformations: list[Transformation],
               interval: str | None = None) -> Panel:
        datasource = targets[0].datasource if targets else None
        panel = Panel(id=self._id(), type=kind, title=title, description=description, gridPos=self._pos(w, h),
                      datasource=datasource, targets=targets, options=options, interval=interval,
                      fieldConfig=FieldConfig(defaults=defaults, overrides=overrides),
                      transformations=transformations)
        self.items.append(panel)
        return panel

    def timeseries(self, title: str, description: str, targets: list[Target], *, unit: str, w: int = 12,
                   h: int = 8, draw: str = "line", stack: bool = False, overrides: list[Override] = (),
                   min_value: float | None = None, legend_table: bool = False, interval: str | None = None) -> Panel:
        custom: dict[str, Any] = {"drawStyle": draw, "lineWidth": 1, "fillOpacity": 60 if draw == "bars" else 10,
                                  "showPoints": "never", "spanNulls": False, "axisSoftMin": min_value}
        if stack:
            custom["stacking"] = {"mode": "normal", "group": "A"}
        custom = {k: v for k, v in custom.items() if v is not None}
        legend = Legend(displayMode="table" if legend_table else "list", placement="bottom",
                        calcs=["mean", "max"] if legend_table else [])
        return self._panel("timeseries", title, description, targets,
                           TimeseriesOptions(legend=legend, tooltip=Tooltip(mode="multi", sort="desc")), w, h,
                           FieldDefaults(unit=unit, custom=custom, color=FieldColor(mode="palette-classic")),
                           list(overrides), [], interval)

    def table(self, title: str, description: str, targets: list[Target], *, w: int = 12, h: int = 8,
              sort_by: str | None = None, desc: bool = True, overrides: list[Override] = (),
              transformations: list[Transformation] = (), unit: str | None = None) -> Panel:
        sort = [SortBy(displayName=sort_by, desc=desc)] if sort_by else []
        return self._panel("table", title, description, targets, TableOptions(sortBy=sort), w, h,
                           FieldDefaults(unit=unit, custom={"align": "auto", "filterable": True}),
                           list(overrides), list(transformations))

    def stat(self, title: str, description: str, targets: list[Target], *, unit: str = "none", w: int = 6,
             h: int = 4, calc: str = "lastNotNull", steps: Thresholds | None = None) -> Panel:
        return self._panel("stat", title, description, targets,
                           StatOptions(reduceOptions=ReduceOptions(calcs=[calc]), colorMode="background"), w, h,
                           FieldDefaults(unit=unit, noValue="0", color=FieldColor(mode="thresholds"),
                                         thresholds=steps or thresholds(("green", None))), [], [])

    def bargauge(self, title: str, description: str, targets: list[Target], *, unit: str, w: int = 12,
                 h: int = 8, calc: str = "lastNotNull") -> Panel:
        return self._panel("bargauge", title, description, targets,
                           BarGaugeOptions(reduceOptions=ReduceOptions(calcs=[calc], values=False)), w, h,
                           FieldDefaults(unit=unit, min=0, color=FieldColor(mode="continuous-BlYlRd")), [], [])

    def heatmap(self, title: str, description: str, targets: list[Target], *, unit: str, w: int = 24,
                h: int = 10, scheme: str = "Oranges", interval: str | None = None) -> Panel:
        options = HeatmapOptions(yAxis=HeatmapYAxis(unit=None))
        options.color.scheme = scheme
        return self._panel("heatmap", title, description, targets, options, w, h,
                           FieldDefaults(unit=unit, custom={"hideFrom": {"legend": False, "tooltip": False,
                                                                         "viz": False}}), [], [], interval)

    def text(self, title: str, content: str, *, w: int = 24, h: int = 3) -> Panel:
        return self._panel("text", title, "", [], TextOptions(content=content.strip()), w, h, FieldDefaults(), [], [])


def organize(rename_fields: dict[str, str] | None = None, hide: list[str] | tuple[str, ...] = ()) -> Transformation:
    """Rename and hide table columns (Grafana's "Organize fields")."""
    return Transformation(id="organize", options={"excludeByName": {name: True for name in hide},
                                                  "renameByName": dict(rename_fields or {}), "indexByName": {}})
