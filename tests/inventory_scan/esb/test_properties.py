"""Placeholders resolved from the property files a project ships; template and value both kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory_scan import Catalog, Kind
from inventory_scan.config import FileSource
from inventory_scan.esb import EsbScan, EsbSource
from inventory_scan.esb.properties import Properties
from inventory_scan.files.scan import FileScan
from inventory_scan.links import link

MULE = "http://www.mulesoft.org/schema/mule"


def _mule_project(root: Path, drops: Path) -> None:
    (root / "src" / "main" / "mule").mkdir(parents=True)
    (root / "pom.xml").write_text("<project/>")
    (root / "src" / "main" / "resources").mkdir(parents=True)
    (root / "src" / "main" / "mule" / "orders.xml").write_text(
        f"""<mule xmlns="{MULE}/core" xmlns:file="{MULE}/file" xmlns:http="{MULE}/http" xmlns:db="{MULE}/db">
          <http:request-config name="erp"><http:request-connection host="${{p['erp.host']}}" port="${{erp.port}}"/>
          </http:request-config>
          <db:config name="ledger"><db:my-sql-connection url="${{ledger.url}}" password="${{db.password}}"/></db:config>
          <flow name="orderFiles">
            <file:listener directory="${{drop.root}}/orders"/>
            <http:request config-ref="erp" path="/orders" method="POST"/>
            <http:request url="${{crm.url}}/customers" method="GET"/>
          </flow>
        </mule>"""
    )
    resources = root / "src" / "main" / "resources"
    (resources / "config.yaml").write_text(
        f"erp:\n  host: erp-de.acme.local\n  port: 8080\ndrop:\n  root: {drops}\n"
        "db:\n  password: hunter2\nledger:\n  url: jdbc:mysql://ledger:Pw99@ledger-db:3306/gl\n"
    )
    # Environments agree on nothing here, so the CRM's address stays a template.
    (resources / "config-dev.yaml").write_text("crm:\n  url: http://crm-dev.local\n")
    (resources / "config-prod.yaml").write_text("crm:\n  url: https://crm.acme.local\n")


def test_mule_project_endpoints_resolve_from_its_files_and_link_on_the_value(tmp_path: Path) -> None:
    drops = tmp_path / "srv" / "edi"
    (drops / "orders").mkdir(parents=True)
    (drops / "orders" / "ORD_0001.csv").write_text("po,sku,qty\n1,A,2\n")
    _mule_project(tmp_path / "apps" / "orders-app", drops)
    esb, errors = EsbScan().run([EsbSource(str(tmp_path / "apps"))])
    assert errors == []
    files, _ = FileScan(jobs=1).run([FileSource(path=drops)])
    catalog = link(esb.merge(files))
    endpoints = {i.locator: i for i in catalog.interfaces if i.kind is Kind.esb_endpoint}
    assert set(endpoints) == {
        f"file://{drops}/orders",
        "http://erp-de.acme.local:8080/orders",
        "${crm.url}/customers",
    }
    assert endpoints[f"file://{drops}/orders"].attributes["template"] == "file:///${drop.root}/orders"
    erp = endpoints["http://erp-de.acme.local:8080/orders"]
    assert erp.attributes["template"] == "http://${p['erp.host']}:${erp.port}/orders"
    polls = [e for e in catalog.edges if e.relation == "link:polls"]
    assert [(catalog.interface(e.source).locator, catalog.interface(e.target).name) for e in polls] == [
        (f"file://{drops}/orders", "ORD_{seq}.csv")
    ]
    assert "hunter2" not in catalog.model_dump_json() and "Pw99" not in catalog.model_dump_json()


@pytest.mark.parametrize(
    ("files", "template", "resolved"),
    [
        (
            {"application.properties": "camel.host=mq01\nport: 61616\n"},
            "tcp://{{camel.host}}:{{port}}",
            "tcp://mq01:61616",
        ),
        ({"bindings.properties": "DropRoot=D:\\\\Drops\n"}, "file:$(DropRoot)/in", "file:D:\\\\Drops/in"),
        (
            {"deployment.toml": '[server]\nhostname = "esb01"\n[secrets]\nadmin = "x"\n'},
            "http://${server.hostname}/",
            "http://esb01/",
        ),
        (
            {"deployment.toml": '[server]\nhostname = "esb01"\n'},
            "${sys:carbon.home}/${env:DIR}",
            "${sys:carbon.home}/${env:DIR}",
        ),
        ({"config.yaml": "a:\n  b: ${c}\nc: deep\n"}, "x/${a.b}", "x/deep"),  # values that are templates themselves
        ({"config.yaml": "loop: ${loop}\n"}, "${loop}", "${loop}"),  # a loop stops, the template is kept
        (
            {"app.properties": "secret.token=abc\napi.key=K\n"},
            "${secret.token}/${api.key}",
            "${secret.token}/${api.key}",
        ),
        ({"app.properties": "x=1\n", "app-prod.properties": "x=2\n"}, "#[p('x')]", "1"),  # the base file wins
        ({"app-dev.properties": "x=1\n", "app-prod.properties": "x=1\n"}, "${x}", "1"),  # environments agree
        ({"broken.yaml": "a: [\n", "ok.properties": "y=2\n"}, "${y}", "2"),  # one broken file costs only itself
    ],
)
def test_resolution_table(tmp_path: Path, files: dict[str, str], template: str, resolved: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    warnings: list[tuple[str, str]] = []
    properties = Properties.of_project(tmp_path, lambda path, message: warnings.append((path, message)))
    assert properties.resolve(template) == resolved
    if "broken.yaml" in files:
        assert [Path(path).name for path, _ in warnings] == ["broken.yaml"]


def test_two_projects_scanned_together_keep_their_own_values(tmp_path: Path) -> None:
    for app, host in (("a", "erp-a"), ("b", "erp-b")):
        project = tmp_path / app
        project.mkdir()
        (project / "mule-artifact.json").write_text("{}")
        (project / "config.properties").write_text(f"erp.host={host}\n")
        (project / "flow.xml").write_text(
            f'<mule xmlns="{MULE}/core" xmlns:http="{MULE}/http"><flow name="f{app}">'
            '<http:request url="http://${erp.host}/x"/></flow></mule>'
        )
    catalog: Catalog = EsbScan().run([EsbSource(str(tmp_path))])[0]
    assert {i.locator for i in catalog.interfaces if i.kind is Kind.esb_endpoint} == {
        "http://erp-a/x",
        "http://erp-b/x",
    }
