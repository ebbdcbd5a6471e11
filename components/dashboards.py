"""ServiceDashboard: one service's Grafana dashboard, rendered with Grafana's own builders
(grafana-foundation-sdk) from core.dashboards, shipped as a ConfigMap the Grafana sidecar of
kube-prometheus-stack loads (it watches ConfigMaps carrying its label; the folder comes from an
annotation)."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from grafana_foundation_sdk.builders import dashboard as grafana
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig, StackingConfig
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode, StackingMode
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
)

from core.config.stack import DashboardSettings
from core.dashboards import DASHBOARD_LABEL, DashboardSpec, Panel, PanelKind
from core.naming import DASHBOARD_TYPE

PART_OF = {"app.kubernetes.io/part-of": "platform"}
GRAFANA_ANNOTATIONS = DataSourceRef(type_val="grafana", uid="-- Grafana --")
"""Grafana's built-in annotation store, where the release tool posts (release.annotations)."""
PANEL_WIDTH = {PanelKind.TIMESERIES: 12, PanelKind.STAT: 6}
PANEL_HEIGHT = 8


def render(spec: DashboardSpec, datasource_uid: str) -> dict[str, Any]:
    """The dashboard JSON Grafana loads: rows of panels, every query on the stack's Prometheus
    datasource, and the release annotations of this service in this stack."""
    datasource = DataSourceRef(type_val="prometheus", uid=datasource_uid)
    builder = (
        grafana.Dashboard(spec.title)
        .uid(spec.uid)
        .tags(["platform", spec.service])
        .readonly()
        .time("now-6h", "now")
        .refresh("1m")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .annotation(
            grafana.AnnotationQuery()
            .name("Releases")
            .datasource(GRAFANA_ANNOTATIONS)
            .enable(True)
            .icon_color("#8F3BB8")
            .target(
                grafana.AnnotationTarget()
                .type("tags")
                .tags(list(spec.annotation_tags))
                .match_any(False)
                .limit(100)
            )
        )
    )
    ids = iter(range(1, 1000))
    for row in spec.rows:
        builder = builder.with_row(grafana.Row(row.title).id(next(ids)))
        for panel in row.panels:
            builder = builder.with_panel(_panel(panel, datasource, next(ids)))
    document: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder, sort_keys=True))
    return document


def _steps(panel: Panel) -> list[Threshold]:
    """Green below the thresholds, then orange, then red (or red below a budget's zero)."""
    if panel.good_above:
        return [
            Threshold(value=None, color="red"),
            *(Threshold(value, "green") for value in panel.thresholds),
        ]
    colors = ["orange", "red"][-len(panel.thresholds) :] if panel.thresholds else []
    return [Threshold(value=None, color="green")] + [
        Threshold(value=value, color=color) for value, color in zip(panel.thresholds, colors, strict=True)
    ]


def _panel(panel: Panel, datasource: DataSourceRef, panel_id: int) -> Any:
    builder: Any = stat.Panel() if panel.kind is PanelKind.STAT else timeseries.Panel()
    builder = (
        builder.id(panel_id)
        .title(panel.title)
        .description(panel.description)
        .unit(panel.unit)
        .datasource(datasource)
        .span(PANEL_WIDTH[panel.kind])
        .height(PANEL_HEIGHT)
        .thresholds(grafana.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(_steps(panel)))
    )
    for ref, query in zip("ABCDEFGH", panel.queries, strict=False):
        builder = builder.with_target(
            prometheus.Dataquery()
            .expr(query.expr)
            .legend_format(query.legend)
            .ref_id(ref)
            .datasource(datasource)
        )
    if panel.kind is PanelKind.TIMESERIES:
        style = GraphThresholdsStyleMode.DASHED if panel.thresholds else GraphThresholdsStyleMode.OFF
        builder = builder.thresholds_style(GraphThresholdsStyleConfig().mode(style))
        if panel.stacked:
            builder = builder.stacking(StackingConfig().mode(StackingMode.PERCENT)).fill_opacity(60)
    return builder


class ServiceDashboard(pulumi.ComponentResource):
    """A ConfigMap `<svc>-dashboard` holding `<svc>.json` (the rendered dashboard), labelled for the
    Grafana sidecar (`settings.label` = `settings.label_value`) and annotated with its folder."""

    config_map_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        namespace: pulumi.Input[str],
        spec: DashboardSpec,
        settings: DashboardSettings,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(DASHBOARD_TYPE, name, None, opts)
        document = render(spec, settings.datasource_uid)
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-dashboard",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{spec.service}-dashboard",
                namespace=namespace,
                labels={**PART_OF, settings.label: settings.label_value, DASHBOARD_LABEL: spec.service},
                annotations={settings.folder_annotation: settings.folder},
            ),
            data={f"{spec.service}.json": json.dumps(document, sort_keys=True, separators=(",", ":"))},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.config_map_name = config_map.metadata.apply(lambda metadata: str(metadata["name"]))
        self.register_outputs({"config_map_name": self.config_map_name})
