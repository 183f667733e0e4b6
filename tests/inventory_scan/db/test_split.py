import pytest

from inventory_scan.db.split import guess_dialect, split

CASES = [
    (
        "tsql GO batches and sqlcmd directives",
        "tsql",
        ":setvar DatabaseName ERP\r\nCREATE TABLE t (a int)\r\nGO\r\nCREATE TRIGGER trg ON t AFTER INSERT AS\r\nSELECT 1;\r\nSELECT 2\r\ngo 2\r\nPRINT 'GO'\r\n",
        ["CREATE TABLE t (a int)", "CREATE TRIGGER trg ON t AFTER INSERT AS\nSELECT 1;\nSELECT 2", "PRINT 'GO'"],
    ),
    (
        "mysql DELIMITER ;; and //",
        "mysql",
        "CREATE TABLE t (a int);\nDELIMITER ;;\nCREATE TRIGGER x AFTER INSERT ON t FOR EACH ROW BEGIN\n  INSERT INTO u VALUES (1);\nEND;;\nDELIMITER //\nCREATE PROCEDURE p() BEGIN SELECT ';'; END//\nDELIMITER ;\nSELECT 1;",
        [
            "CREATE TABLE t (a int)",
            "CREATE TRIGGER x AFTER INSERT ON t FOR EACH ROW BEGIN\n  INSERT INTO u VALUES (1);\nEND",
            "CREATE PROCEDURE p() BEGIN SELECT ';'; END",
            "SELECT 1",
        ],
    ),
    (
        "postgres dollar-quoted bodies",
        "postgres",
        'CREATE FUNCTION f() RETURNS trigger AS $body$ BEGIN NEW.a := 1; RETURN NEW; END $body$ LANGUAGE plpgsql;\nCREATE TABLE "a;b" (x int);',
        [
            "CREATE FUNCTION f() RETURNS trigger AS $body$ BEGIN NEW.a := 1; RETURN NEW; END $body$ LANGUAGE plpgsql",
            'CREATE TABLE "a;b" (x int)',
        ],
    ),
    (
        "oracle slash ends PL/SQL blocks",
        "oracle",
        "CREATE TABLE t (a NUMBER);\nCREATE OR REPLACE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW\nBEGIN\n  :NEW.a := 1;\nEND;\n/\nALTER TRIGGER trg DISABLE;\n",
        [
            "CREATE TABLE t (a NUMBER)",
            "CREATE OR REPLACE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW\nBEGIN\n  :NEW.a := 1;\nEND;",
            "ALTER TRIGGER trg DISABLE",
        ],
    ),
    (
        "sqlite trigger bodies keep their semicolons",
        "sqlite",
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE a SET x = 1; DELETE FROM b; END;\nSELECT 1; -- a comment; with a semicolon\n",
        [
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE a SET x = 1; DELETE FROM b; END",
            "SELECT 1",
            "-- a comment; with a semicolon",
        ],
    ),
    (
        "strings and comments never split",
        "postgres",
        "\ufeffSELECT 'a;b' /* c;d */ , \"e;f\";\n-- g;h\nSELECT 2;",
        ["SELECT 'a;b' /* c;d */ , \"e;f\"", "-- g;h\nSELECT 2"],
    ),
]


@pytest.mark.parametrize(("case", "dialect", "script", "expected"), CASES, ids=[c[0] for c in CASES])
def test_split(case: str, dialect: str, script: str, expected: list[str]) -> None:
    assert [s.text for s in split(script, dialect)] == expected


def test_statement_lines() -> None:
    statements = split("SELECT 1;\n\n\nSELECT\n2;", "postgres")
    assert [s.line for s in statements] == [1, 4]


@pytest.mark.parametrize(
    ("script", "dialect"),
    [
        ("CREATE TABLE [dbo].[t] (a NVARCHAR(10))\nGO\n", "tsql"),
        ("DELIMITER ;;\nCREATE TABLE `t` (a int) ENGINE=InnoDB;;", "mysql"),
        ("CREATE FUNCTION f() RETURNS trigger AS $$ BEGIN END $$ LANGUAGE plpgsql;", "postgres"),
        ("CREATE TABLE t (a VARCHAR2(10), b NUMBER(5));\n/\n", "oracle"),
        ("CREATE TABLE t (a INTEGER PRIMARY KEY AUTOINCREMENT);", "sqlite"),
    ],
)
def test_guess_dialect(script: str, dialect: str) -> None:
    assert guess_dialect(script)[0] == dialect
