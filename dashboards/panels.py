"""Panel and template-variable factories shared by the five civicpulse dashboards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    geomap,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models import geomap as geomap_models

from dashboards.dataquery import SQL, datasource_ref

# Filters every panel applies; the variables are defined below.
SITE_FILTER = "council IN ($council) AND sensor_id IN ($site)"
STATUS_COLOURS = [(None, "green"), (1, "yellow"), (2, "red"), (3, "purple")]
BUILTIN_ANNOTATIONS = "Annotations & Alerts"


def thresholds(steps: Sequence[tuple[float | None, str]]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds; the first step's value is None (the base colour)."""
    return (
        dashboard.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(value=v, color=c) for v, c in steps])
    )


def _query_variable(name: str, label: str, sql: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .query(" ".join(sql.split()))
        .datasource(datasource_ref())
        .multi(True)
        .include_all(True)
        .refresh(models.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
        .current(models.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def council_variable() -> dashboard.QueryVariable:
    """Councils that have sensors."""
    return _query_variable(
        "council", "Council", "SELECT DISTINCT council FROM dash_sensor_status ORDER BY 1"
    )


def kind_variable() -> dashboard.QueryVariable:
    """Kinds of sensor in the chosen councils."""
    return _query_variable(
        "kind",
        "Sensor kind",
        "SELECT DISTINCT kind FROM dash_sensor_status WHERE council IN ($council) ORDER BY 1",
    )


def ward_variable(kind: str | None) -> dashboard.QueryVariable:
    """Wards (from sensor_sites; sensors without one are in '(no ward)')."""
    return _query_variable(
        "ward",
        "Ward",
        "SELECT DISTINCT coalesce(nullif(ward, ''), '(no ward)') FROM dash_sensor_status"
        f" WHERE council IN ($council) AND {_kind_clause(kind)} ORDER BY 1",
    )


def site_variable(kind: str | None) -> dashboard.QueryVariable:
    """Sites (sensors) in the chosen councils and wards; the value is the sensor id."""
    return _query_variable(
        "site",
        "Site",
        "SELECT site || ' (' || sensor_id || ')' AS __text, sensor_id AS __value"
        " FROM dash_sensor_status WHERE council IN ($council)"
        f" AND coalesce(nullif(ward, ''), '(no ward)') IN ($ward) AND {_kind_clause(kind)}"
        " ORDER BY 1",
    )


def _kind_clause(kind: str | None) -> str:
    return "kind IN ($kind)" if kind is None else f"kind = '{kind}'"


def standard_variables(kind: str | None) -> list[dashboard.QueryVariable]:
    """council → (kind) → ward → site, each narrowing the next."""
    chain = [council_variable()]
    if kind is None:
        chain.append(kind_variable())
    return [*chain, ward_variable(kind), site_variable(kind)]


P = TypeVar("P", bound=Any)


def _finish(panel: P, title: str, description: str, w: int, h: int) -> P:
    # SDK builders change themselves and return self.
    panel.title(title).description(description).datasource(datasource_ref()).span(w).height(h)
    return panel


def timeseries_panel(
    title: str,
    description: str,
    sql: str,
    *,
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    limits: Sequence[tuple[float, str]] = (),
    bars: bool = False,
) -> timeseries.Panel:
    """A time series (format time_series: a ``time`` column, ascending); limits drawn as lines."""
    panel = timeseries.Panel().with_target(SQL(sql).time_series()).unit(unit)
    panel = panel.legend(
        common.VizLegendOptions()
        .show_legend(True)
        .display_mode(common_models.LegendDisplayMode.TABLE)
        .placement(common_models.LegendPlacement.RIGHT)
        .calcs(["lastNotNull", "max"])
    )
    panel = panel.tooltip(
        common.VizTooltipOptions()
        .mode(common_models.TooltipDisplayMode.MULTI)
        .sort(common_models.SortOrder.NONE)
    )
    if bars:
        panel = panel.draw_style(common_models.GraphDrawStyle.BARS).fill_opacity(80)
    if limits:
        panel = panel.thresholds(thresholds([(None, "transparent"), *limits])).thresholds_style(
            common.GraphThresholdsStyleConfig().mode(common_models.GraphTresholdsStyleMode.LINE)
        )
    return _finish(panel, title, description, w, h)


def table_panel(
    title: str,
    description: str,
    sql: str,
    *,
    w: int = 12,
    h: int = 8,
    unit: str | None = None,
    colour_by: Sequence[tuple[float | None, str]] = (),
) -> table.Panel:
    """A table; with ``colour_by`` thresholds, cells are coloured by value."""
    panel = (
        table.Panel()
        .with_target(SQL(sql))
        .show_header(True)
        .cell_height(common_models.TableCellHeight.SM)
    )
    if unit:
        panel = panel.unit(unit)
    if colour_by:
        panel = panel.thresholds(thresholds(colour_by))
    return _finish(panel, title, description, w, h)


def stat_panel(
    title: str,
    description: str,
    sql: str,
    *,
    unit: str = "short",
    w: int = 6,
    h: int = 4,
    colours: Sequence[tuple[float | None, str]] = ((None, "green"),),
) -> stat.Panel:
    """Single numbers (one per numeric column), coloured by thresholds."""
    panel = stat.Panel().with_target(SQL(sql)).unit(unit).thresholds(thresholds(colours))
    panel = panel.reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    panel = panel.color_mode(common_models.BigValueColorMode.BACKGROUND)
    return _finish(panel, title, description, w, h)


def bargauge_panel(
    title: str,
    description: str,
    sql: str,
    *,
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    colours: Sequence[tuple[float | None, str]],
    minimum: float = 0,
    maximum: float | None = None,
) -> bargauge.Panel:
    """One bar per row (``values``: every row, not a reduction)."""
    panel = bargauge.Panel().with_target(SQL(sql)).unit(unit).thresholds(thresholds(colours))
    panel = panel.min(minimum).reduce_options(
        common.ReduceDataOptions().values(True).calcs(["lastNotNull"])
    )
    panel = panel.display_mode(common_models.BarGaugeDisplayMode.GRADIENT).orientation(
        common_models.VizOrientation.HORIZONTAL
    )
    if maximum is not None:
        panel = panel.max(maximum)
    return _finish(panel, title, description, w, h)


def state_timeline_panel(
    title: str,
    description: str,
    sql: str,
    *,
    mappings: list[models.ValueMapping],
    colours: Sequence[tuple[float | None, str]],
    w: int = 24,
    h: int = 8,
) -> statetimeline.Panel:
    """Rows of states over time (format time_series, numeric states mapped to text)."""
    panel = statetimeline.Panel().with_target(SQL(sql).time_series()).mappings(mappings)
    panel = (
        panel.thresholds(thresholds(colours))
        .show_value(common_models.VisibilityMode.NEVER)
        .merge_values(True)
    )
    return _finish(panel, title, description, w, h)


def geomap_panel(
    title: str,
    description: str,
    sql: str,
    *,
    colour_field: str,
    colours: Sequence[tuple[float | None, str]],
    w: int = 12,
    h: int = 12,
    lat: int = 56,
    lon: int = -3,
    zoom: int = 6,
) -> geomap.Panel:
    """Markers at each row's latitude/longitude, coloured by ``colour_field``."""
    layer = (
        common.MapLayerOptions()
        .type("markers")
        .name("sensors")
        .tooltip(True)
        .location(
            common.FrameGeometrySource()
            .mode(common_models.FrameGeometrySourceMode.COORDS)
            .latitude("latitude")
            .longitude("longitude")
        )
        .config(
            {
                "showLegend": True,
                "style": {
                    "color": {"field": colour_field, "fixed": "dark-green"},
                    "size": {"fixed": 6},
                    "opacity": 0.9,
                    "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                },
            }
        )
    )
    panel = geomap.Panel().with_target(SQL(sql)).thresholds(thresholds(colours))
    panel = panel.view(geomap.MapViewConfig().id("coords").lat(lat).lon(lon).zoom(zoom))
    panel = panel.basemap(common.MapLayerOptions().type("default").name("Basemap"))
    panel = panel.layers([layer]).controls(geomap.ControlsOptions().show_zoom(True))
    panel = panel.tooltip(geomap.TooltipOptions().mode(geomap_models.TooltipMode.DETAILS))
    return _finish(panel, title, description, w, h)


def value_text(mapping: dict[int, tuple[str, str]]) -> list[models.ValueMapping]:
    """Numeric states to text and colour (for state timelines and status tables)."""
    return [
        models.ValueMap(
            options={
                str(k): models.ValueMappingResult(text=t, color=c, index=i)
                for i, (k, (t, c)) in enumerate(mapping.items())
            }
        )
    ]


def builtin_annotations() -> dashboard.AnnotationQuery:
    """Grafana's own "Annotations & Alerts" (render() marks it builtIn, which the SDK lacks)."""
    return (
        dashboard.AnnotationQuery()
        .name(BUILTIN_ANNOTATIONS)
        .datasource(models.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
        .target(dashboard.AnnotationTarget().limit(100).match_any(False).tags([]).type("dashboard"))
    )


def build_dashboard(
    uid: str,
    title: str,
    description: str,
    tags: list[str],
    variables: Sequence[cogbuilder.Builder[models.VariableModel]],
    rows: Sequence[tuple[str, Sequence[Any]]],
    time_from: str = "now-24h",
) -> dashboard.Dashboard:
    """A dashboard of titled rows of panels, with stable ids in reading order."""
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["civicpulse", *tags])
        .timezone("browser")
        .time(time_from, "now")
        .refresh("1m")
        .editable()
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .annotation(builtin_annotations())
        .link(
            dashboard.DashboardLink("civicpulse")
            .type(models.DashboardLinkType.DASHBOARDS)
            .tags(["civicpulse"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    for variable in variables:
        board = board.with_variable(variable)
    panel_id = 0
    for row_title, panels in rows:
        panel_id += 1
        board = board.with_row(dashboard.Row(row_title).id(panel_id))
        for panel in panels:
            panel_id += 1
            board = board.with_panel(panel.id(panel_id))
    return board
