"""Secrets never leave the scanner: planted in every place a value can appear, found nowhere after.

Every scanner reads an estate with credentials planted in URI userinfo (http, jdbc:mysql, vfs:sftp,
amqp, ftp), secret-named query parameters and properties, DSN `PWD=`, attribute values, property
files, X12 security fields, and the address of a WSDL fetched over HTTP. Then every output is
searched for each planted value: the catalog, the scans' stdout and stderr, the HTML and Markdown
reports, every graph export, `catalog show` and the route scaffolds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

SECRETS = [
    "Sup3rSecret",
    "K3YK3Y",
    "DbPw55",
    "VfsPw11",
    "AmqpPw22",
    "FtpPw33",
    "SqlPw44",
    "AttrPw55",
    "PropPw66",
    "SasSig77",
    "TokTok88",
    "IsaPw99",
    "UrlPw00",
    "BizPw12",
    "CamelPw13",
]
MULE = "http://www.mulesoft.org/schema/mule"
WSDL = """<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
  xmlns:tns="urn:acme" targetNamespace="urn:acme">
  <message name="In"/><message name="Out"/>
  <portType name="P"><operation name="CreateOrder"><input message="tns:In"/><output message="tns:Out"/></operation>
  </portType>
  <binding name="B" type="tns:P"><soap:binding transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="CreateOrder"><soap:operation soapAction="urn:CreateOrder"/></operation></binding>
  <service name="OrderService"><port name="Port" binding="tns:B">
    <soap:address location="http://wsuser:Sup3rSecret@erp.example/svc?wsdl&amp;apikey=K3YK3Y"/></port></service>
</definitions>"""


def _estate(root: Path) -> None:
    esb = root / "esb"
    (esb / "mule-app").mkdir(parents=True)
    (esb / "mule-app" / "mule-artifact.json").write_text("{}")
    (esb / "mule-app" / "config.properties").write_text("db.password=PropPw66\nerp.url=http://u:PropPw66@erp/x\n")
    (esb / "mule-app" / "app.xml").write_text(
        f"""<mule xmlns="{MULE}/core" xmlns:http="{MULE}/http" xmlns:db="{MULE}/db" xmlns:sftp="{MULE}/sftp">
          <db:config name="db"><db:my-sql-connection url="jdbc:mysql://dbuser:DbPw55@dbhost/db"
              password="AttrPw55" user="u"/></db:config>
          <flow name="orders">
            <sftp:inbound-endpoint address="sftp://edi:VfsPw11@sftp.example/in"/>
            <http:request url="https://blob.example/c?sv=1&amp;sig=SasSig77&amp;token=TokTok88" method="PUT"/>
            <http:request url="${{erp.url}}" method="POST"/>
            <db:insert config-ref="db"><db:sql>insert into orders values (1)</db:sql></db:insert>
          </flow>
        </mule>"""
    )
    (esb / "camel.xml").write_text(
        """<beans xmlns="http://www.springframework.org/schema/beans"><camelContext xmlns="http://camel.apache.org/schema/spring">
          <route id="toLedger"><from uri="ftp://edi@ftp.example/out?password=FtpPw33&amp;binary=true"/>
            <to uri="rabbitmq://guest:AmqpPw22@mq.example:5672/orders"/>
            <to uri="jdbc:mysql://ledger:CamelPw13@ledger-db/gl"/></route>
        </camelContext></beans>"""
    )
    (esb / "bindings.xml").write_text(
        """<BindingInfo><SendPortCollection><SendPort Name="ToPartner"><PrimaryTransport>
          <Address>ftp://partner:BizPw12@ftp.partner.example/in/%MessageID%.xml</Address>
          <TransportType Name="FTP"/></PrimaryTransport></SendPort></SendPortCollection></BindingInfo>"""
    )
    (esb / "OrderService.wsdl").write_text(WSDL)
    sql = root / "sql"
    sql.mkdir()
    (sql / "erp.sql").write_text(
        "CREATE TRIGGER trg_sync ON orders AFTER INSERT AS\nBEGIN\n"
        "  INSERT INTO OPENROWSET('SQLNCLI', 'Server=hq;UID=sa;PWD=SqlPw44;', 'SELECT * FROM hq.dbo.orders')\n"
        "  SELECT * FROM inserted;\nEND\nGO\n"
    )
    drops = root / "drops" / "in"
    drops.mkdir(parents=True)
    (drops / "IN0001.dat").write_text(
        "ISA*01*IsaPw99   *01*IsaPw99   *ZZ*SENDER         *ZZ*RECEIVER       *260101*0215*U*00401*000000001*0*P*>~"
        "GS*PO*SENDER*RECEIVER*20260101*0215*1*X*004010~ST*850*0001~SE*1*0001~GE*1*1~IEA*1*000000001~"
    )


@pytest.fixture
def wsdl_url() -> Iterator[str]:
    """A WSDL served on loopback, asked for with credentials in its URL as users paste them."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = WSDL.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://wsuser:UrlPw00@127.0.0.1:{server.server_address[1]}/svc?wsdl&apikey=K3YK3Y"
    server.shutdown()


def test_no_planted_secret_reaches_any_output(tmp_path: Path, wsdl_url: str) -> None:
    _estate(tmp_path)
    catalog = tmp_path / "catalog.json"
    runner = CliRunner()
    outputs: dict[str, str] = {}
    for name, command in {
        "scan esb": ["scan", "esb", str(tmp_path / "esb"), wsdl_url, "-o", str(catalog)],
        "scan db": ["scan", "db", str(tmp_path / "sql"), "--dialect", "tsql", "-o", str(catalog)],
        "scan files": ["scan", "files", str(tmp_path / "drops"), "-o", str(catalog)],
        "show": ["catalog", "show", str(catalog)],
        "report": [
            "catalog",
            "report",
            str(catalog),
            "--html",
            str(tmp_path / "r.html"),
            "--markdown",
            str(tmp_path / "r.md"),
        ],
        "dot": ["catalog", "graph", str(catalog), "-f", "dot", "-o", str(tmp_path / "g.dot")],
        "mermaid": ["catalog", "graph", str(catalog), "-f", "mermaid", "-o", str(tmp_path / "g.mmd")],
        "graphml": ["catalog", "graph", str(catalog), "-f", "graphml", "-o", str(tmp_path / "g.graphml")],
        "scaffold": ["routes", "scaffold", str(catalog), "--out", str(tmp_path / "routes")],
    }.items():
        result = runner.invoke(app, command)
        assert result.exit_code == 0, f"{name}: {result.output}"
        outputs[name] = result.output
    for written in [catalog, *tmp_path.glob("r.*"), *tmp_path.glob("g.*"), *(tmp_path / "routes").glob("*")]:
        outputs[written.name] = written.read_text()
    leaks = {(where, secret) for where, text in outputs.items() for secret in SECRETS if secret in text}
    assert leaks == set()
    # And the estate was read: the planted places are in the catalog, without their secrets.
    text = catalog.read_text()
    for expected in ("sftp://sftp.example/in", "jdbc:mysql://dbhost/db", "erp.example/svc", "ftp.partner.example"):
        assert expected in text
    assert '"linked_server"' in text  # the trigger's OPENROWSET, read without its connection string
