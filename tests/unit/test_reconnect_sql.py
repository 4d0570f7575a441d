"""The payment path's hand-written SQL stays in step with the lifecycle and the schema."""

from __future__ import annotations

import re

from cloud.commands.lifecycle import ACTIVE_STATES
from cloud.db.models import (
    Command,
    CommandTransition,
    LedgerEntry,
    MeterReadingRecord,
    Payment,
    WebhookEvent,
)
from cloud.db.raw import RawSql
from cloud.payments import intake, reconnect_sql
from cloud.telemetry import embedded


def test_supersede_names_exactly_the_active_states() -> None:
    listed = set(re.findall(r"'([A-Z_]+)'", reconnect_sql.ACTIVE_SQL))
    assert listed == {state.value for state in ACTIVE_STATES}
    assert reconnect_sql.ACTIVE_SQL in reconnect_sql._SUPERSEDE.replace("\n", " ")


def _columns(sql: str) -> set[str]:
    inside = sql.split("(", 1)[1].split(")", 1)[0]
    return {name.strip() for name in inside.split(",")}


def test_inserts_write_every_column_of_their_table() -> None:
    for sql, model in (
        (reconnect_sql._INSERT_COMMAND, Command),
        (intake._INSERT_PAYMENT, Payment),
        (intake._INSERT_EVENT, WebhookEvent),
    ):
        assert _columns(sql) == set(model.__table__.columns.keys()), model.__tablename__
    entry_columns = set(LedgerEntry.__table__.columns.keys()) - {"entry_id"}
    assert _columns(intake._INSERT_ENTRY) == entry_columns
    reading_columns = set(MeterReadingRecord.__table__.columns.keys())
    assert _columns(embedded._INSERT_READING) == reading_columns
    transition_columns = set(CommandTransition.__table__.columns.keys()) - {"transition_id"}
    assert _columns(reconnect_sql._TRANSITION) == transition_columns


def test_parameters_become_each_drivers_placeholders() -> None:
    sql = "SELECT :a, :b, :a, '10:30' FROM t WHERE x::text = :b"
    sqlite = RawSql(None, "sqlite")._prepare(sql)
    postgres = RawSql(None, "postgresql")._prepare(sql)
    assert sqlite == ("SELECT ?, ?, ?, '10:30' FROM t WHERE x::text = ?", ("a", "b", "a", "b"))
    assert postgres[0] == "SELECT $1, $2, $3, '10:30' FROM t WHERE x::text = $4"
