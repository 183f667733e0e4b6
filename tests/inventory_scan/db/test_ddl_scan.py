"""Offline scans: every script in shared/corpora/sql against the README's ground truth, and DDL written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory_scan import Catalog, Interface, Kind
from inventory_scan.db.scan import DbScan, DbSource

HERE = Path(__file__).parent / "ddl"


def scan(path: Path, dialect: str | None = None) -> Catalog:
    catalog, errors = DbScan().run([DbSource(ddl=path, dialect=dialect)])
    assert errors == []
    return catalog


def triggers(catalog: Catalog) -> list[Interface]:
    return [i for i in catalog.interfaces if i.kind is Kind.db_trigger]


def by_name(catalog: Catalog) -> dict[str, Interface]:
    return {i.name: i for i in catalog.interfaces}


def test_sakila_mysql(corpora: Path) -> None:
    catalog = scan(corpora / "sql" / "sakila-mysql-schema.sql")
    found = {
        (t.name, t.attributes["timing"], tuple(t.attributes["events"]), t.attributes["table"], tuple(t.writes))
        for t in triggers(catalog)
    }
    assert found == {
        ("ins_film", "AFTER", ("INSERT",), "film", ("film_text",)),
        ("upd_film", "AFTER", ("UPDATE",), "film", ("film_text",)),
        ("del_film", "AFTER", ("DELETE",), "film", ("film_text",)),
    }
    said = catalog.sources[0].warnings[0].message
    assert said.startswith("dialect guessed: mysql (marks found: mysql ") and "{" not in said  # read, not a dict
    routines = {i.name for i in catalog.interfaces if i.kind is Kind.db_procedure}
    assert routines == {
        "rewards_report",
        "get_customer_balance",
        "film_in_stock",
        "film_not_in_stock",
        "inventory_held_by_customer",
        "inventory_in_stock",
    }


def test_sakila_postgres(corpora: Path) -> None:
    catalog = scan(corpora / "sql" / "sakila-postgres-schema.sql", "postgres")
    found = triggers(catalog)
    assert len(found) == 15
    fulltext = [t for t in found if t.name == "film_fulltext_trigger"]
    assert [
        (t.attributes["timing"], t.attributes["events"], t.attributes["table"], t.attributes["level"]) for t in fulltext
    ] == [("BEFORE", ["INSERT", "UPDATE"], "film", "ROW")]
    updated = [t for t in found if t.name == "last_updated"]
    assert len(updated) == 14 and {(t.attributes["timing"], tuple(t.attributes["events"])) for t in updated} == {
        ("BEFORE", ("UPDATE",))
    }
    assert len({t.id for t in updated}) == 14  # one trigger name on 14 tables: 14 interfaces
    function = next(i for i in catalog.interfaces if i.kind is Kind.db_procedure and i.name == "last_updated")
    executes = {
        catalog.interface(e.source).attributes["table"]
        for e in catalog.edges
        if e.relation == "executes" and e.target == function.id
    }
    assert len(executes) == 14 and "actor" in executes  # each last_updated trigger runs the last_updated() function


def test_sakila_sqlite(corpora: Path) -> None:
    found = triggers(scan(corpora / "sql" / "sakila-sqlite-schema.sql"))
    assert len(found) == 30
    assert {(t.attributes["timing"], tuple(t.attributes["events"])) for t in found} == {
        ("AFTER", ("INSERT",)),
        ("AFTER", ("UPDATE",)),
    }
    assert len({t.attributes["table"] for t in found}) == 15


def test_pubs_tsql(corpora: Path) -> None:
    catalog = scan(corpora / "sql" / "pubs-tsql.sql")
    [trigger] = triggers(catalog)  # "create trigger" inside a message string is not a trigger
    assert (trigger.name, trigger.attributes["table"], trigger.attributes["events"]) == (
        "employee_insupd",
        "employee",
        ["INSERT", "UPDATE"],
    )
    assert trigger.attributes["validations"] == ["aborts the change: RAISERROR + ROLLBACK"]
    assert set(trigger.reads) == {"employee", "jobs"}
    assert trigger.evidence[0].line == 308


def test_every_corpus_script_scans(corpora: Path) -> None:
    catalog = scan(corpora / "sql")
    assert catalog.sources[0].stats == {"files": 4, "triggers": 49, "routines": 19}


def test_tsql_side_effects_calls_and_disable() -> None:
    catalog = scan(HERE / "erp_de_mssql.sql", "tsql")
    names = by_name(catalog)
    assert set(names) == {"Sales.trg_Orders_Export", "Sales.trg_Orders_Validate", "Sales.usp_RecalcCredit"}
    export = names["Sales.trg_Orders_Export"]
    assert export.attributes["table"] == "Sales.Orders" and export.attributes["events"] == ["INSERT", "UPDATE"]
    assert set(export.writes) == {"dbo.Orders_Export_Queue", "WMS01.Warehouse.dbo.InboundOrders"}
    assert {"linked_server:WMS01", "mail:sp_send_dbmail", "queue_table:dbo.Orders_Export_Queue"} <= set(
        export.side_effects
    )
    assert export.attributes["calls"] == ["Sales.usp_RecalcCredit"]  # sp_send_dbmail is a side effect, not a call
    calls = {(catalog.interface(e.source).name, catalog.interface(e.target).name, e.relation) for e in catalog.edges}
    assert ("Sales.trg_Orders_Export", "Sales.usp_RecalcCredit", "calls") in calls
    validate = names["Sales.trg_Orders_Validate"]
    assert (validate.attributes["timing"], validate.attributes["enabled"]) == ("INSTEAD OF", False)
    assert validate.attributes["validations"] == ["aborts the change: RAISERROR + ROLLBACK"]
    proc = names["Sales.usp_RecalcCredit"]
    assert {"com:sp_OACreate", "shell:xp_cmdshell"} <= set(proc.side_effects)
    assert "dynamic_sql" in proc.attributes["constructs"]
    assert proc.complexity is not None and "dynamic sql +3" in proc.complexity.reasons


def test_oracle_side_effects_and_disable() -> None:
    catalog = scan(HERE / "erp_uk_oracle.sql", "oracle")
    names = by_name(catalog)
    notify = names["erp.trg_invoice_notify"]
    assert (notify.attributes["table"], notify.attributes["events"], notify.attributes["level"]) == (
        "erp.invoices",
        ["INSERT", "UPDATE"],
        "ROW",
    )
    assert "NEW.status = 'POSTED'" in notify.attributes["when"]
    assert "erp.invoice_outbox" in notify.writes
    assert {"http:UTL_HTTP", "queue:DBMS_AQ.ENQUEUE", "dblink:hq_link", "outbox:erp.invoice_outbox"} <= set(
        notify.side_effects
    )
    assert "erp.billing_pkg.mark_sent" in notify.attributes["calls"]
    check = names["erp.trg_credit_check"]
    assert check.attributes["enabled"] is False
    assert check.attributes["validations"] == ["aborts the change: RAISE_APPLICATION_ERROR"]
    export = names["erp.nightly_export"]
    assert {"file:UTL_FILE", "mail:UTL_SMTP"} <= set(export.side_effects)
    assert {"cursor", "dynamic_sql", "loop"} <= set(export.attributes["constructs"])


def test_oracle_console_output_is_a_side_effect(tmp_path: Path) -> None:
    (tmp_path / "audit.sql").write_text(
        "CREATE OR REPLACE TRIGGER trg_price_audit AFTER UPDATE ON prices FOR EACH ROW\n"
        "BEGIN\n  DBMS_OUTPUT.PUT_LINE('price changed: ' || :NEW.sku);\nEND;\n/\n"
    )
    trigger = by_name(scan(tmp_path / "audit.sql", "oracle"))["trg_price_audit"]
    assert trigger.side_effects == ["output:DBMS_OUTPUT"]
    assert trigger.direction == "unknown"  # a console line sends no data out of the ERP


def test_unparseable_statements_are_low_confidence_not_fatal(tmp_path: Path) -> None:
    script = tmp_path / "odd.sql"
    script.write_text(
        "CREATE TRIGGER odd AFTER INSERT ON t FOR EACH ROW BEGIN\n"
        "  INSERT INTO export_orders SELECT ?? FROM t WHERE ))(( ;\n"
        "END;\n"
        "complete garbage ( ; ' unterminated\n"
    )
    [odd] = scan(script, "mysql").interfaces
    assert odd.attributes["confidence"] == "low"
    assert odd.writes == ["export_orders"]
    assert any(e.detail.startswith("low confidence: INSERT INTO export_orders") for e in odd.evidence)


def test_missing_ddl_is_an_error_and_other_sources_complete(corpora: Path, tmp_path: Path) -> None:
    catalog, errors = DbScan().run(
        [DbSource(ddl=tmp_path / "missing.sql"), DbSource(ddl=corpora / "sql" / "pubs-tsql.sql")]
    )
    assert len(errors) == 1 and "neither a DDL file nor a folder" in errors[0]
    assert sum(s.complete for s in catalog.sources) == 1


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_bom_and_crlf(tmp_path: Path, encoding: str) -> None:
    script = tmp_path / "bom.sql"
    script.write_bytes(
        "CREATE TRIGGER t ON dbo.a AFTER INSERT AS\r\nINSERT INTO dbo.b SELECT * FROM inserted\r\nGO\r\n".encode(
            encoding
        )
    )
    [trigger] = scan(script, "tsql").interfaces
    assert (trigger.name, trigger.writes) == ("t", ["dbo.b"])


def test_scan_db_command_and_config(corpora: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    runner = CliRunner()
    out = tmp_path / "catalog.json"
    result = runner.invoke(
        app, ["scan", "db", str(corpora / "sql" / "pubs-tsql.sql"), "--dialect", "tsql", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "employee_insupd" in result.output and "db_trigger 1" in result.output
    (tmp_path / "scan.yaml").write_text('db:\n  - connection: "DRIVER={SQLite3};DATABASE=x.db;PWD=hunter2"\n')
    result = runner.invoke(app, ["scan", "run", str(tmp_path / "scan.yaml")])
    assert result.exit_code == 2
    assert "put no password in scan.yaml" in " ".join(result.output.split())
    assert "hunter2" not in result.output
    result = runner.invoke(app, ["scan", "db", str(tmp_path / "typo.sql"), "-o", str(out)])
    assert result.exit_code == 2 and "typo.sql: no such DDL file or folder" in " ".join(result.output.split())
    (tmp_path / "x.sql").write_text("SELECT 1;")
    result = runner.invoke(app, ["scan", "db", str(tmp_path / "x.sql"), "--dialect", "cobol", "-o", str(out)])
    assert result.exit_code == 2 and "unknown dialect 'cobol'" in " ".join(result.output.split())


def test_a_body_the_analysis_cannot_take_costs_only_its_details(corpora: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inventory_scan.db import analysis
    from inventory_scan.db import scan as db_scan

    real = analysis.analyse

    def picky(obj: analysis.DbObject) -> analysis.Analysis:
        if obj.name.endswith("upd_film"):
            raise RecursionError("maximum recursion depth exceeded")
        return real(obj)

    monkeypatch.setattr(db_scan, "analyse", picky)
    catalog = scan(corpora / "sql" / "sakila-mysql-schema.sql", "mysql")
    triggers = {i.name: i for i in catalog.interfaces if i.kind is Kind.db_trigger}
    assert len(triggers) == 3
    assert triggers["upd_film"].attributes["confidence"] == "low"
    assert any("body not analysed: RecursionError" in w.message for w in catalog.sources[0].warnings)
