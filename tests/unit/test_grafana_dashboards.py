"""Every dashboard query names only measurements, fields and tags that the writer produces."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud.telemetry.schema import MEASUREMENTS

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCE_UID = "switchyard-influxdb"

_MEASUREMENT = re.compile(r'r\._measurement\s*==\s*"([^"]+)"')
_FIELD = re.compile(r'r\._field\s*==\s*"([^"]+)"')
_RECORD_COLUMN = re.compile(r"\br\.([A-Za-z][A-Za-z0-9_]*)")
_RECORD_INDEX = re.compile(r'\br\["([^"]+)"\]')
_COLUMN_LISTS = re.compile(r"columns:\s*\[([^\]]*)\]")
_COLUMN_ARG = re.compile(r'\bcolumn:\s*"([^"]+)"')
# Columns that Flux itself makes, or that a query creates with map(): not schema names.
_MADE_BY_FLUX = {"_time", "_value", "_field", "_measurement", "_start", "_stop"}


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


def _queries() -> Iterator[tuple[str, str, str]]:
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard):
            for target in panel.get("targets", []):
                yield path.name, panel["title"], target["query"]


QUERIES = list(_queries())


def _referenced_columns(query: str) -> set[str]:
    names = set(_RECORD_COLUMN.findall(query)) | set(_RECORD_INDEX.findall(query))
    names |= set(_COLUMN_ARG.findall(query))
    for listed in _COLUMN_LISTS.findall(query):
        names |= set(re.findall(r'"([^"]+)"', listed))
    return names - _MADE_BY_FLUX


def test_there_are_the_five_dashboards_and_each_has_queries() -> None:
    assert [p.stem for p in DASHBOARDS] == [
        "command-outcomes",
        "consumption",
        "fleet-overview",
        "relay-operations",
        "voltage-quality",
    ]
    assert {name for name, _, _ in QUERIES} == {p.name for p in DASHBOARDS}


@pytest.mark.parametrize(("dashboard", "panel", "query"), QUERIES)
def test_query_names_only_what_the_writer_produces(dashboard: str, panel: str, query: str) -> None:
    measurements = _MEASUREMENT.findall(query)
    assert measurements, f"{dashboard} / {panel}: the query names no measurement"
    unknown = [m for m in measurements if m not in MEASUREMENTS]
    assert not unknown, f"{dashboard} / {panel}: no measurement {unknown} is written"
    declared = [MEASUREMENTS[m] for m in measurements]
    fields = _FIELD.findall(query)
    assert fields, f"{dashboard} / {panel}: the query names no field"
    for field in fields:
        assert all(field in m.fields for m in declared), (
            f"{dashboard} / {panel}: field {field!r} is not written to {measurements}"
        )
    tags = set().union(*(m.tags for m in declared))
    created = set(re.findall(r"\(\{\s*(?:r with\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*:", query))
    columns = _referenced_columns(query) - created
    assert columns <= tags, f"{dashboard} / {panel}: no tag {sorted(columns - tags)} is written"


def test_the_checker_catches_a_wrong_name() -> None:
    good = (
        'from(bucket: v.defaultBucket) |> filter(fn: (r) => r._measurement == "meter_reading"'
        ' and r._field == "voltage_v") |> group(columns: ["dcu_id"])'
    )
    test_query_names_only_what_the_writer_produces("x", "y", good)
    for bad in (
        good.replace("voltage_v", "voltage"),
        good.replace("meter_reading", "meter_readings"),
        good.replace('"dcu_id"', '"feeder_id"'),
    ):
        with pytest.raises(AssertionError):
            test_query_names_only_what_the_writer_produces("x", "y", bad)


def test_every_panel_uses_the_provisioned_data_source() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/influxdb.yaml").read_text())
    (source,) = provisioned["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "influxdb"
    assert source["jsonData"]["version"] == "Flux"
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"].startswith("switchyard-")
        for panel in _panels(dashboard):
            assert panel["datasource"]["uid"] == DATASOURCE_UID, f"{path.name}: {panel['title']}"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/switchyard.yaml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_required_views_are_there() -> None:
    titles = {panel for _, panel, _ in QUERIES}
    text = " ".join(query for _, _, query in QUERIES)
    assert "Meters by relay state" in titles and "Gateways online" in titles
    assert "quantile(q: 0.5" in text and "quantile(q: 0.95" in text  # payment to power p50/p95
    assert '"payment_to_power_ms"' in text and '"voltage_v"' in text
    assert '"outcome"' in text and '"dropped_readings"' in text
