"""The subset of Grafana's dashboard JSON (schemaVersion 39, Grafana 10.4–11) that Vigie emits, as
strict pydantic models: an unknown key, a wrong type or an options block that does not belong to the
panel's type is refused. The builders construct these models, so a dashboard that does not fit
cannot be written; tests/test_grafana.py validates the committed JSON against them too.

Field names are Grafana's own (camelCase), so ``model_dump(by_alias=True, exclude_none=True)`` is
the file Grafana reads. Reference: Grafana's dashboard JSON model
(https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/)
and the panel options of each visualization.

Cross-checks beyond single fields (:meth:`Dashboard._consistent`): unique panel ids, unique refIds
within a panel, panels inside the 24-column grid and not overlapping, every ``$variable`` used
in a query defined by the dashboard (or one of Grafana's own), every datasource one of
:data:`DATASOURCES`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_serializer, model_validator

#: Datasource uid → type, as grafana/provisioning/datasources/*.yaml provisions them.
DATASOURCES: dict[str, str] = {
    "vigie-influxdb": "influxdb",
    "vigie-postgres": "grafana-postgresql-datasource",
    "vigie-prometheus": "prometheus",
}
#: Variables Grafana defines itself (global variables and the InfluxDB data source's macros).
BUILTIN_VARIABLES = frozenset({"timeFilter", "interval", "__interval", "__interval_ms", "__from", "__to",
                               "__timeFilter", "__timeFrom", "__timeTo", "__timeGroup", "__timeGroupAlias",
                               "__rate_interval", "__range", "tag_meter_id", "tag_room", "tag_building",
                               "tag_home_id", "tag_device", "col"})
# Grafana's template variable syntaxes: $name, [[name]], ${name} / ${name:format}.
VARIABLE_RE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
GRID_COLUMNS = 24
#: Grafana unit ids the dashboards use (Grafana's own ids: ``litreh`` is L/h, ``kwatth`` kWh).
UNITS = frozenset({"none", "short", "litre", "litreh", "m3", "celsius", "percent", "percentunit", "kwatt",
                   "kwatth", "s", "ops"})


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DatasourceRef(Model):
    type: str
    uid: str

    @model_validator(mode="after")
    def _known(self) -> "DatasourceRef":
        if DATASOURCES.get(self.uid) != self.type:
            raise ValueError(f"datasource {self.uid!r} of type {self.type!r} is not one of {DATASOURCES}")
        return self


# --- queries ------------------------------------------------------------------------------------

class InfluxTarget(Model):
    """A raw InfluxQL query (InfluxDB data source, InfluxQL mode)."""

    refId: str
    datasource: DatasourceRef
    query: str
    rawQuery: Literal[True] = True
    resultFormat: Literal["time_series", "table"]
    alias: str | None = None
    hide: bool | None = None


class SqlTarget(Model):
    """A raw SQL query (PostgreSQL data source, code editor)."""

    refId: str
    datasource: DatasourceRef
    rawSql: str
    format: Literal["time_series", "table"]
    rawQuery: Literal[True] = True
    editorMode: Literal["code"] = "code"


class PromTarget(Model):
    """A PromQL query (Prometheus data source, code editor)."""

    refId: str
    datasource: DatasourceRef
    expr: str
    legendFormat: str
    range: bool = True
    instant: bool = False
    editorMode: Literal["code"] = "code"


Target = InfluxTarget | SqlTarget | PromTarget


def target_text(t: Target) -> str:
    """The query text of a target, whatever its data source."""
    return t.query if isinstance(t, InfluxTarget) else t.rawSql if isinstance(t, SqlTarget) else t.expr


# --- field config -------------------------------------------------------------------------------

class ThresholdStep(Model):
    """``value`` None is the base step (from −∞), written ``null`` as Grafana does."""

    color: str
    value: float | None

    @model_serializer(mode="plain")
    def _with_null(self) -> dict[str, Any]:
        return {"color": self.color, "value": self.value}


class Thresholds(Model):
    mode: Literal["absolute", "percentage"] = "absolute"
    steps: list[ThresholdStep]


class FieldColor(Model):
    mode: Literal["palette-classic", "thresholds", "fixed", "continuous-GrYlRd", "continuous-BlYlRd"]
    fixedColor: str | None = None


def _unit(unit: str | None) -> str | None:
    if unit is not None and unit not in UNITS:
        raise ValueError(f"unit {unit!r} is not one of the Grafana unit ids {sorted(UNITS)}")
    return unit


class FieldDefaults(Model):
    unit: Annotated[str | None, AfterValidator(_unit)] = None
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    displayName: str | None = None
    noValue: str | None = None
    color: FieldColor | None = None
    thresholds: Thresholds | None = None
    custom: dict[str, Any] = Field(default_factory=dict)
    mappings: list[dict[str, Any]] = Field(default_factory=list)


class Matcher(Model):
    id: Literal["byName", "byRegexp", "byFrameRefID", "byType"]
    options: str


class Property(Model):
    id: str
    value: Any

    @model_validator(mode="after")
    def _known_unit(self) -> "Property":
        if self.id == "unit":
            _unit(self.value)
        return self


class Override(Model):
    matcher: Matcher
    properties: list[Property]


class FieldConfig(Model):
    defaults: FieldDefaults = Field(default_factory=FieldDefaults)
    overrides: list[Override] = Field(default_factory=list)


class Transformation(Model):
    id: Literal["organize", "sortBy", "merge", "joinByField", "filterFieldsByName", "reduce", "labelsToFields"]
    options: dict[str, Any]


# --- panel options per visualization --------------------------------------------------------------

class Legend(Model):
    showLegend: bool = True
    displayMode: Literal["list", "table", "hidden"] = "list"
    placement: Literal["bottom", "right"] = "bottom"
    calcs: list[str] = Field(default_factory=list)


class Tooltip(Model):
    mode: Literal["single", "multi", "none"] = "multi"
    sort: Literal["none", "asc", "desc"] = "none"


class TimeseriesOptions(Model):
    legend: Legend
    tooltip: Tooltip


class SortBy(Model):
    displayName: str
    desc: bool


class TableOptions(Model):
    showHeader: bool = True
    cellHeight: Literal["sm", "md", "lg"] = "sm"
    sortBy: list[SortBy] = Field(default_factory=list)


class ReduceOptions(Model):
    calcs: list[str]
    fields: str = ""
    values: bool = False


class StatOptions(Model):
    reduceOptions: ReduceOptions
    colorMode: Literal["value", "background", "none"] = "value"
    graphMode: Literal["none", "area"] = "none"
    justifyMode: Literal["auto", "center"] = "auto"
    orientation: Literal["auto", "horizontal", "vertical"] = "auto"
    textMode: Literal["auto", "value", "value_and_name", "name"] = "auto"


class BarGaugeOptions(Model):
    reduceOptions: ReduceOptions
    displayMode: Literal["gradient", "lcd", "basic"] = "gradient"
    orientation: Literal["auto", "horizontal", "vertical"] = "horizontal"
    showUnfilled: bool = True


class HeatmapColor(Model):
    mode: Literal["scheme", "opacity"] = "scheme"
    scheme: str = "Oranges"
    fill: str = "dark-orange"
    scale: Literal["exponential", "linear"] = "exponential"
    exponent: float = 0.5
    steps: int = 64
    reverse: bool = False


class HeatmapYAxis(Model):
    axisPlacement: Literal["left", "right", "hidden"] = "left"
    reverse: bool = False
    unit: str | None = None


class HeatmapOptions(Model):
    calculate: Literal[False] = False
    color: HeatmapColor = Field(default_factory=HeatmapColor)
    yAxis: HeatmapYAxis = Field(default_factory=HeatmapYAxis)
    rowsFrame: dict[str, str] = Field(default_factory=lambda: {"layout": "auto"})
    cellGap: int = 1
    showValue: Literal["auto", "never", "always"] = "never"
    legend: dict[str, bool] = Field(default_factory=lambda: {"show": True})
    tooltip: dict[str, Any] = Field(default_factory=lambda: {"mode": "single", "yHistogram": False})
    exemplars: dict[str, str] = Field(default_factory=lambda: {"color": "rgba(255,0,255,0.7)"})


class TextOptions(Model):
    mode: Literal["markdown"] = "markdown"
    content: str


PanelOptions = TimeseriesOptions | TableOptions | StatOptions | BarGaugeOptions | HeatmapOptions | TextOptions
OPTIONS_OF: dict[str, type[Model]] = {"timeseries": TimeseriesOptions, "table": TableOptions, "stat": StatOptions,
                                      "bargauge": BarGaugeOptions, "heatmap": HeatmapOptions, "text": TextOptions}


# --- panels ---------------------------------------------------------------------------------------

class GridPos(Model):
    h: int = Field(ge=1)
    w: int = Field(ge=1, le=GRID_COLUMNS)
    x: int = Field(ge=0, lt=GRID_COLUMNS)
    y: int = Field(ge=0)


class Panel(Model):
    id: int
    type: Literal["timeseries", "table", "stat", "bargauge", "heatmap", "text"]
    title: str
    description: str = ""
    gridPos: GridPos
    datasource: DatasourceRef | None = None
    targets: list[Target] = Field(default_factory=list)
    fieldConfig: FieldConfig = Field(default_factory=FieldConfig)
    options: PanelOptions
    transformations: list[Transformation] = Field(default_factory=list)
    interval: str | None = None
    maxDataPoints: int | None = None

    @model_validator(mode="after")
    def _coherent(self) -> "Panel":
        if not isinstance(self.options, OPTIONS_OF[self.type]):
            raise ValueError(f"panel {self.title!r}: options of a {self.type} panel expected")
        if self.type == "text":
            if self.targets or self.datasource:
                raise ValueError(f"text panel {self.title!r} takes no query")
            return self
        if not self.targets or self.datasource is None:
            raise ValueError(f"panel {self.title!r}: a datasource and at least one query are required")
        refs = [t.refId for t in self.targets]
        if len(set(refs)) != len(refs):
            raise ValueError(f"panel {self.title!r}: duplicate refIds {refs}")
        for t in self.targets:
            if t.datasource != self.datasource:
                raise ValueError(f"panel {self.title!r}: query {t.refId} uses another datasource than the panel")
        return self


class Row(Model):
    id: int
    type: Literal["row"] = "row"
    title: str
    collapsed: Literal[False] = False
    gridPos: GridPos
    panels: list[Panel] = Field(default_factory=list)


# --- templating and annotations --------------------------------------------------------------------

class VariableOption(Model):
    text: str | list[str]
    value: str | list[str]
    selected: bool = True


class QueryVariable(Model):
    """A variable whose values a data source query lists (InfluxQL ``SHOW TAG VALUES``)."""

    type: Literal["query"] = "query"
    name: str = Field(pattern=r"^\w+$")
    label: str
    description: str = ""
    datasource: DatasourceRef
    query: str
    definition: str
    refresh: Literal[1, 2] = 2          # 1 on dashboard load, 2 on time range change
    includeAll: bool = False
    multi: bool = False
    sort: int = 1                        # alphabetical ascending
    hide: Literal[0, 1, 2] = 0
    regex: str = ""
    skipUrlSync: bool = False
    current: VariableOption | dict = Field(default_factory=dict)
    options: list[VariableOption] = Field(default_factory=list)


class Templating(Model):
    variables: list[QueryVariable] = Field(default_factory=list, alias="list")


class InfluxAnnotationTarget(Model):
    refId: str = "Anno"
    query: str
    rawQuery: Literal[True] = True
    resultFormat: Literal["table"] = "table"
    fromAnnotations: Literal[True] = True
    textEditor: Literal[True] = True
    textColumn: str
    tagsColumn: str = ""
    titleColumn: str = ""


class Annotation(Model):
    """An annotation query: InfluxQL whose rows become markers on every time series panel."""

    name: str
    datasource: DatasourceRef
    enable: bool = True
    hide: bool = False
    iconColor: str
    target: InfluxAnnotationTarget


class Annotations(Model):
    queries: list[Annotation] = Field(default_factory=list, alias="list")


class TimeRange(Model):
    from_: str = Field(alias="from")
    to: str


class DashboardLink(Model):
    title: str
    type: Literal["dashboards"] = "dashboards"
    tags: list[str]
    asDropdown: bool = False
    includeVars: bool = False
    keepTime: bool = True
    targetBlank: bool = False
    icon: str = "external link"
    tooltip: str = ""
    url: str = ""


class Dashboard(Model):
    uid: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,40}$")
    title: str
    description: str = ""
    tags: list[str]
    timezone: str = "browser"
    schemaVersion: Literal[39] = 39
    version: int = 1
    editable: bool = False
    graphTooltip: Literal[0, 1, 2] = 1
    refresh: str = ""
    time: TimeRange
    fiscalYearStartMonth: int = 0
    liveNow: bool = False
    weekStart: str = ""
    templating: Templating = Field(default_factory=Templating)
    annotations: Annotations = Field(default_factory=Annotations)
    links: list[DashboardLink] = Field(default_factory=list)
    panels: list[Panel | Row]

    def all_panels(self) -> list[Panel]:
        """Every query panel, rows' contents included, in order."""
        out: list[Panel] = []
        for p in self.panels:
            out.extend(p.panels if isinstance(p, Row) else [p])
        return out

    def to_json(self) -> dict:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @model_validator(mode="after")
    def _consistent(self) -> "Dashboard":
        items: list[Panel | Row] = []
        for p in self.panels:
            items.append(p)
            if isinstance(p, Row):
                items.extend(p.panels)
        ids = [p.id for p in items]
        if len(set(ids)) != len(ids):
            raise ValueError(f"dashboard {self.uid}: duplicate panel ids {sorted(ids)}")
        cells: dict[tuple[int, int], str] = {}
        for p in items:
            g = p.gridPos
            if g.x + g.w > GRID_COLUMNS:
                raise ValueError(f"{self.uid}: panel {p.title!r} overflows the {GRID_COLUMNS}-column grid")
            for x in range(g.x, g.x + g.w):
                for y in range(g.y, g.y + g.h):
                    if (x, y) in cells:
                        raise ValueError(f"{self.uid}: panels {cells[(x, y)]!r} and {p.title!r} overlap")
                    cells[(x, y)] = p.title
        defined = {v.name for v in self.templating.variables} | BUILTIN_VARIABLES
        texts = [target_text(t) for p in self.all_panels() for t in p.targets]
        texts += [a.target.query for a in self.annotations.queries] + [v.query for v in self.templating.variables]
        for text in texts:
            for m in VARIABLE_RE.finditer(text):
                name = m.group(1) or m.group(2) or m.group(4)
                if name not in defined:
                    raise ValueError(f"{self.uid}: query uses undefined variable ${name}: {text[:120]}")
        return self
