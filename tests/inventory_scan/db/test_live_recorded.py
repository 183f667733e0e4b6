"""SQL Server and Oracle have no server here: their catalog queries are checked for syntax with
sqlglot, and their row readers are fed rows recorded in the shape those queries return."""

from __future__ import annotations

import pytest
import sqlglot

from inventory_scan.db.live import ENGINES, engine_for, read_objects

MSSQL_TRIGGERS = [
    (
        "Sales",
        "Orders",
        "trg_Orders_Export",
        False,
        "CREATE TRIGGER [Sales].[trg_Orders_Export] ON [Sales].[Orders]\r\nAFTER INSERT, UPDATE\r\nAS\r\nBEGIN\r\n"
        "  INSERT INTO dbo.Orders_Export_Queue (OrderID) SELECT OrderID FROM inserted\r\n"
        "  EXEC msdb.dbo.sp_send_dbmail @recipients = 'ops@acme.example'\r\nEND\r\n",
    ),
    (
        "Sales",
        "Orders",
        "trg_Orders_Validate",
        True,
        "CREATE TRIGGER trg_Orders_Validate ON Sales.Orders INSTEAD OF DELETE AS RAISERROR('no', 16, 1)",
    ),
]
MSSQL_ROUTINES = [
    (
        "Sales",
        "usp_RecalcCredit",
        "CREATE PROCEDURE Sales.usp_RecalcCredit @id int AS UPDATE Sales.Customers SET Credit = 0 WHERE CustomerID = @id",
    )
]
ORACLE_TRIGGERS = [
    (
        "ERP",
        "INVOICES",
        "TRG_INVOICE_NOTIFY",
        "AFTER EACH ROW",
        "INSERT OR UPDATE",
        "ENABLED",
        "BEGIN\n  INSERT INTO invoice_outbox (invoice_id) VALUES (:NEW.invoice_id);\n  UTL_HTTP.request('http://finance/hook');\nEND;\n",
    ),
    (
        "ERP",
        "ORDERS",
        "TRG_CREDIT_CHECK",
        "BEFORE EACH ROW",
        "INSERT",
        "DISABLED",
        "BEGIN RAISE_APPLICATION_ERROR(-20001, 'limit'); END;",
    ),
]
ORACLE_SOURCE = [
    ("ERP", "NIGHTLY_EXPORT", "PROCEDURE", 1, "PROCEDURE nightly_export IS\n"),
    ("ERP", "NIGHTLY_EXPORT", "PROCEDURE", 2, "BEGIN\n"),
    ("ERP", "NIGHTLY_EXPORT", "PROCEDURE", 3, "  INSERT INTO orders_export SELECT * FROM orders;\n"),
    ("ERP", "NIGHTLY_EXPORT", "PROCEDURE", 4, "END;\n"),
]


@pytest.mark.parametrize("engine", ENGINES, ids=[e.name for e in ENGINES])
def test_catalog_queries_parse_in_their_dialect(engine: object) -> None:
    for query in (engine.triggers, engine.routines):  # type: ignore[attr-defined]
        if query:
            parsed = sqlglot.parse_one(query, read=engine.dialect)  # type: ignore[attr-defined]
            assert parsed.find(sqlglot.exp.Select) is not None


@pytest.mark.parametrize(
    ("dbms", "engine"),
    [
        ("Microsoft SQL Server", "SQL Server"),
        ("Oracle", "Oracle"),
        ("PostgreSQL", "PostgreSQL"),
        ("MariaDB", "MySQL/MariaDB"),
        ("SQLite", "SQLite"),
    ],
)
def test_engine_detection(dbms: str, engine: str) -> None:
    found = engine_for(dbms)
    assert found is not None and found.name == engine


def test_sql_server_rows() -> None:
    engine = engine_for("Microsoft SQL Server")
    assert engine is not None
    answers = {engine.triggers: MSSQL_TRIGGERS, engine.routines: MSSQL_ROUTINES}
    objects = read_objects(engine, lambda query: answers[query])
    summary = [(o.kind, o.name, o.table, o.timing, o.events, o.enabled) for o in objects]
    assert summary == [
        ("trigger", "Sales.trg_Orders_Export", "Sales.Orders", "AFTER", ["INSERT", "UPDATE"], True),
        ("trigger", "Sales.trg_Orders_Validate", "Sales.Orders", "INSTEAD OF", ["DELETE"], False),
        ("procedure", "Sales.usp_RecalcCredit", None, None, [], True),
    ]


def test_oracle_rows() -> None:
    engine = engine_for("Oracle")
    assert engine is not None
    answers = {engine.triggers: ORACLE_TRIGGERS, engine.routines: ORACLE_SOURCE}
    objects = read_objects(engine, lambda query: answers[query])
    summary = [(o.kind, o.name, o.table, o.timing, o.events, o.level, o.enabled) for o in objects]
    assert summary == [
        ("trigger", "ERP.TRG_INVOICE_NOTIFY", "ERP.INVOICES", "AFTER", ["INSERT", "UPDATE"], "ROW", True),
        ("trigger", "ERP.TRG_CREDIT_CHECK", "ERP.ORDERS", "BEFORE", ["INSERT"], "ROW", False),
        ("procedure", "ERP.nightly_export", None, None, [], None, True),
    ]
    assert "INSERT INTO orders_export" in objects[2].body
