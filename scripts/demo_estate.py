"""Build the demo distributor's file-drop estate: three legal entities, a month of history.

    python scripts/demo_estate.py .demo        # then: banyan scan run .demo/scan.yaml

- ACME-DE takes X12 850 purchase orders from a retailer every ~15 minutes in business hours, answers
  with 855 acknowledgements, and archives what it imported by month.
- ACME-UK receives EDIFACT ORDERS nightly around 02:00 (some land in error/), sends DESADV.
- ACME-US gets a stock CSV every morning, UBL invoices through the week, and cXML orders.

- Partners drop acknowledgements (X12 997), supplier invoices (UBL) and in-house fixed-width
  files into one shared mailbox, all named `RCV00001.dat`.

File names are what such systems really write (`IN0001.dat` says nothing: the scanner reads the
content). Everything is generated here, so every clone builds the same estate.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
DAYS = 30
BUSINESS_DAYS = 22  # ACME-DE's order days: the weekdays of a month
SEED = 20260107


def x12_850(rng: random.Random, po: int, sender: str, receiver: str, when: datetime) -> str:
    date, time = when.strftime("%y%m%d"), when.strftime("%H%M")
    segments = [
        f"ISA*00*          *00*          *ZZ*{sender:<15}*ZZ*{receiver:<15}*{date}*{time}*U*00401*{po:09d}*0*P*>",
        f"GS*PO*{sender}*{receiver}*20{date}*{time}*{po}*X*004010",
        f"ST*850*{po % 10000:04d}",
        f"BEG*00*SA*PO{po}**20{date}",
        "N1*ST*ACME DE Lager Hamburg*92*DE-HH-01",
        f"PO1*1*{rng.randint(1, 40)}*EA*{rng.uniform(2, 90):.2f}**VP*SKU-{rng.randint(1000, 9999)}",
        f"PO1*2*{rng.randint(1, 40)}*EA*{rng.uniform(2, 90):.2f}**VP*SKU-{rng.randint(1000, 9999)}",
        "CTT*2",
        f"SE*7*{po % 10000:04d}",
        f"GE*1*{po}",
        f"IEA*1*{po:09d}",
    ]
    return "~\n".join(segments) + "~\n"


def x12_855(po: int, sender: str, receiver: str, when: datetime) -> str:
    date, time = when.strftime("%y%m%d"), when.strftime("%H%M")
    segments = [
        f"ISA*00*          *00*          *ZZ*{sender:<15}*ZZ*{receiver:<15}*{date}*{time}*U*00401*{po:09d}*0*P*>",
        f"GS*PR*{sender}*{receiver}*20{date}*{time}*{po}*X*004010",
        f"ST*855*{po % 10000:04d}",
        f"BAK*00*AC*PO{po}*20{date}",
        f"SE*3*{po % 10000:04d}",
        f"GE*1*{po}",
        f"IEA*1*{po:09d}",
    ]
    return "~".join(segments) + "~"


def edifact(rng: random.Random, kind: str, ref: int, sender: str, receiver: str, when: datetime) -> str:
    stamp = when.strftime("%y%m%d:%H%M")
    return (
        "UNA:+.? '\r\n"
        f"UNB+UNOC:3+{sender}:14+{receiver}:14+{stamp}+{ref}'\r\n"
        f"UNH+1+{kind}:D:96A:UN:EAN008'\r\n"
        f"BGM+220+{kind[:3]}{ref}+9'\r\n"
        f"DTM+137:{when:%Y%m%d}:102'\r\n"
        f"NAD+BY+{sender}::9'\r\n"
        f"LIN+1++{rng.randint(10**12, 10**13 - 1)}:EN'\r\n"
        f"QTY+21:{rng.randint(1, 200)}'\r\n"
        "UNT+7+1'\r\n"
        f"UNZ+1+{ref}'\r\n"
    )


def stock_csv(rng: random.Random, when: datetime) -> str:
    rows = ["item;warehouse;on_hand;reserved;updated"]
    for item in range(40):
        rows.append(f"SKU-{1000 + item};US-NJ-01;{rng.randint(0, 900)};{rng.randint(0, 50)};{when:%Y-%m-%d}")
    return "\r\n".join(rows) + "\r\n"


def x12_997(control: int, sender: str, receiver: str, when: datetime) -> str:
    """A partner's functional acknowledgement of one of our groups."""
    date, time = when.strftime("%y%m%d"), when.strftime("%H%M")
    segments = [
        f"ISA*00*          *00*          *ZZ*{sender:<15}*ZZ*{receiver:<15}*{date}*{time}*U*00401*{control:09d}*0*P*>",
        f"GS*FA*{sender}*{receiver}*20{date}*{time}*{control}*X*004010",
        f"ST*997*{control % 10000:04d}",
        f"AK1*PR*{control}",
        "AK9*A*1*1*1",
        f"SE*4*{control % 10000:04d}",
        f"GE*1*{control}",
        f"IEA*1*{control:09d}",
    ]
    return "~\n".join(segments) + "~\n"


def fixed_width(rng: random.Random, batch: int, when: datetime) -> str:
    """An in-house despatch file: a header record, one record per line, fields by column."""
    lines = [f"HDR{batch:08d}{when:%Y%m%d%H%M}ACMEPARTNER    DESPATCH  "]
    for line in range(1, rng.randint(4, 9)):
        sku = f"SKU-{rng.randint(1000, 9999)}"
        lines.append(f"LIN{line:04d}{sku:<12}{rng.randint(1, 500):08d}EA{rng.randint(100, 9999):09d}")
    lines.append(f"TRL{len(lines) - 1:06d}")
    return "\r\n".join(lines) + "\r\n"


def ubl_invoice(number: int, when: datetime) -> str:
    return textwrap.dedent(
        f"""\
        <?xml version="1.0" encoding="UTF-8"?>
        <Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
                 xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
          <cbc:UBLVersionID>2.1</cbc:UBLVersionID>
          <cbc:ID>INV-US-{number}</cbc:ID>
          <cbc:IssueDate>{when:%Y-%m-%d}</cbc:IssueDate>
          <cbc:DocumentCurrencyCode>USD</cbc:DocumentCurrencyCode>
        </Invoice>
        """
    )


def cxml_order(number: int, when: datetime) -> str:
    return textwrap.dedent(
        f"""\
        <?xml version="1.0" encoding="UTF-8"?>
        <!DOCTYPE cXML SYSTEM "http://xml.cxml.org/schemas/cXML/1.2.050/cXML.dtd">
        <cXML payloadID="{number}@procurement.example" timestamp="{when.isoformat()}">
          <Header><From><Credential domain="NetworkId"><Identity>AN0100{number % 97}</Identity>
          </Credential></From></Header>
          <Request><OrderRequest><OrderRequestHeader orderID="US-{number}" type="new"/></OrderRequest></Request>
        </cXML>
        """
    )


def write_esb(root: Path) -> None:
    """The ESB configurations that move the drops above (templates in demo_esb/), aimed at the estate's folders."""
    esb = root / "esb"
    esb.mkdir(parents=True, exist_ok=True)
    folders = {
        "{edi}": str((root / "acme_de" / "edi").absolute()),
        "{orders}": str((root / "acme_uk" / "ftp" / "orders").absolute()),
    }
    for template in sorted((HERE / "demo_esb").iterdir()):
        text = template.read_text(encoding="utf-8")
        for placeholder, folder in folders.items():
            text = text.replace(placeholder, folder)
        (esb / template.name).write_text(text, encoding="utf-8")


def write_databases(root: Path) -> None:
    """ACME-DE's ERP as an install script; ACME-US's ERP as a live SQLite database, scanned over ODBC."""
    databases = root / "databases"
    databases.mkdir(parents=True, exist_ok=True)
    (databases / "erp_de.sql").write_text(
        (HERE / "demo_db" / "erp_de.sql").read_text(encoding="utf-8"), encoding="utf-8"
    )
    with sqlite3.connect(databases / "erp_us.db") as connection:
        connection.executescript((HERE / "demo_db" / "erp_us.sql").read_text(encoding="utf-8"))
        connection.executemany(
            "INSERT INTO orders (customer, total) VALUES (?, ?)", [("Globex", 120.5), ("Initech", 88)]
        )


def write(path: Path, content: str | bytes, when: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))


def business_quarters(rng: random.Random, end: datetime) -> list[datetime]:
    """Every ~15 minutes, 08:00–18:00, on the BUSINESS_DAYS weekdays before `end`: as many orders
    whatever the day the estate is built on."""
    days: list[datetime] = []
    date = end.replace(hour=0)
    while len(days) < BUSINESS_DAYS:
        date -= timedelta(days=1)
        if date.weekday() < 5:
            days.append(date)
    return [
        day.replace(hour=8) + timedelta(minutes=15 * quarter, seconds=rng.randint(-40, 40))
        for day in reversed(days)
        for quarter in range(40)
    ]


def streams(*names: str) -> list[random.Random]:
    """One generator per stream of files, each seeded by its name: what one stream draws never
    depends on how many numbers another drew (the calendar decides how many business days there are)."""
    return [random.Random(f"{SEED}:{name}") for name in names]


def build(root: Path, now: datetime | None = None) -> None:
    """The estate as it stands at `now` (this hour, by default): a month of history behind it. Every
    count in it (files, errors, lines) is the same whatever the date."""
    de_rng, uk_rng, us_rng, partner_rng = streams("acme_de", "acme_uk", "acme_us", "partners")
    if root.exists():
        shutil.rmtree(root)
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = (now - timedelta(days=DAYS)).replace(hour=0)

    # ACME-DE: X12 over a folder share; imported files move to archive/YYYY-MM.
    de = root / "acme_de" / "edi"
    (de / "inbound").mkdir(parents=True)
    moments = business_quarters(de_rng, now)
    for n, moment in enumerate(moments, start=1):
        # The last few orders still wait in inbound/ for the importer; the rest are archived by month.
        folder = de / "inbound" if n > len(moments) - 3 else de / "archive" / f"{moment:%Y-%m}"
        write(folder / f"IN{n:06d}.dat", x12_850(de_rng, 400000 + n, "RETAILCO", "ACMEDE", moment), moment)
        reply = moment + timedelta(minutes=3)
        write(
            de / "outbound" / f"855_{reply:%Y%m%d%H%M%S}.x12",
            x12_855(400000 + n, "ACMEDE", "RETAILCO", reply),
            reply,
        )

    # ACME-UK: EDIFACT ORDERS nightly around 02:00, a few rejected; DESADV sent back at 06:00.
    uk = root / "acme_uk" / "ftp" / "orders"
    for day in range(DAYS):
        night = start + timedelta(days=day, hours=2, minutes=uk_rng.randint(0, 20))
        for batch in range(3):
            stage = "error" if uk_rng.random() < 0.05 else "processed"
            name = f"ORDERS_{night:%Y%m%d}_{day * 3 + batch:05d}.edi"
            write(
                uk / stage / name,
                edifact(uk_rng, "ORDERS", day * 3 + batch, "5012345000011", "5099999000001", night),
                night,
            )
        morning = start + timedelta(days=day, hours=6)
        write(
            root / "acme_uk" / "ftp" / "despatch" / "out" / f"DESADV_{morning:%Y%m%d}.edi",
            edifact(uk_rng, "DESADV", day, "5099999000001", "5012345000011", morning),
            morning,
        )

    # ACME-UK: a supplier's weekly price catalogue, until it moved to its own portal four months ago.
    for week in range(12):
        moment = start - timedelta(days=120 + 7 * week) + timedelta(hours=7)
        write(
            root / "acme_uk" / "ftp" / "pricat" / "in" / f"PRICAT_{moment:%Y%m%d}.edi",
            edifact(uk_rng, "PRICAT", 700 + week, "5012345000028", "5099999000001", moment),
            moment,
        )

    # ACME-US: stock every morning at 05:30, invoices through the day, cXML orders at random.
    us = root / "acme_us" / "exchange"
    for day in range(DAYS):
        morning = start + timedelta(days=day, hours=5, minutes=30)
        write(us / "export" / f"STOCK_{morning:%Y%m%d}.csv", stock_csv(us_rng, morning), morning)
        for k in range(us_rng.randint(2, 6)):
            moment = start + timedelta(days=day, hours=us_rng.randint(9, 16), minutes=us_rng.randint(0, 59))
            write(
                us / "invoices" / "out" / f"INV-US-{day * 10 + k:06d}.xml",
                ubl_invoice(day * 10 + k, moment),
                moment,
            )
    for k in range(60):
        moment = start + timedelta(seconds=us_rng.randint(0, DAYS * 86400))
        write(us / "procurement" / "in" / f"{us_rng.getrandbits(64):016x}.xml", cxml_order(k, moment), moment)

    # Partners' shared mailbox: acknowledgements, supplier invoices and in-house files, one naming scheme.
    for n in range(1, 28):
        moment = start + timedelta(days=n % DAYS, hours=n % 24)
        document = (
            x12_997(500000 + n, "RETAILCO", "ACMEDE", moment),
            ubl_invoice(900000 + n, moment),
            fixed_width(partner_rng, n, moment),
        )[n % 3]
        write(root / "partners" / "samples" / f"RCV{n:05d}.dat", document, moment)

    write_esb(root)
    write_databases(root)

    (root / "scan.yaml").write_text(
        textwrap.dedent(
            """\
            # The demo estate's scan config: `banyan scan run .demo/scan.yaml`
            out: catalog.json
            timezone: UTC
            files:
              - path: acme_de
                system: erp_de
              - path: acme_uk
                system: erp_uk
              - path: acme_us
                system: erp_us
              - path: partners
                system: partner_gateway
            esb:
              - path: esb
            db:
              - ddl: databases/erp_de.sql
                system: erp_de
              - connection: "DRIVER={SQLite3};DATABASE=DATABASES/erp_us.db"
                system: erp_us
            entities:
              - entity: ACME-DE
                path: "*/acme_de/*"
              - entity: ACME-UK
                path: "*/acme_uk/*"
              - entity: ACME-US
                path: "*/acme_us/*"
              - entity: ACME-DE
                path: "*/esb/acme-de-*"
              - entity: ACME-DE
                path: "*/OrderService.wsdl"
              - entity: ACME-UK
                path: "*/esb/uk-*"
              - entity: ACME-DE
                path: "*/databases/erp_de*"
              - entity: ACME-US
                path: "*erp_us*"
              - entity: ACME-UK         # partner files addressed to ACME-UK's EDIFACT id
                receiver: ["5099999000001"]
            roadmap:                    # what the migration does with each interface: banyan catalog roadmap
              overrides:
                - match: "dbo.usp_nightly_credit_mail"
                  disposition: retire
                  reason: "the cloud ERP's dunning run replaces the nightly credit mail"
            """
        ),
        encoding="utf-8",
    )
    scan_yaml = root / "scan.yaml"
    scan_yaml.write_text(
        scan_yaml.read_text(encoding="utf-8").replace("DATABASES", str((root / "databases").absolute())),
        encoding="utf-8",
    )
    files = sum(1 for p in root.rglob("*") if p.is_file())
    print(f"demo estate: {files:,} files under {root} (scan config: {root / 'scan.yaml'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder to build the estate in (replaced if it exists)")
    build(parser.parse_args().root)


if __name__ == "__main__":
    main()
