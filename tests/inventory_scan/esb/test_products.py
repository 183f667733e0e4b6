"""Product features the public corpora do not exercise, on configs written here."""

from __future__ import annotations

from pathlib import Path

from inventory_scan import Catalog, Kind
from inventory_scan.esb import EsbScan, EsbSource
from inventory_scan.links import link


def scan(path: Path) -> Catalog:
    catalog, errors = EsbScan().run([EsbSource(str(path))])
    assert errors == []
    assert catalog.sources[0].warnings == []
    return link(catalog)


def flows(catalog: Catalog) -> dict[str, set[tuple[str, str, str]]]:
    return {
        i.name: {(e["role"], e["protocol"], e["locator"]) for e in i.attributes["endpoints"]}
        for i in catalog.interfaces
        if i.kind is Kind.esb_flow
    }


def test_camel_standalone_routes_with_placeholders_credentials_and_cxf(tmp_path: Path) -> None:
    (tmp_path / "routes.xml").write_text(
        """<routes xmlns="http://camel.apache.org/schema/spring">
          <route id="pullInvoices">
            <from uri="sftp://edi:s3cret@{{partner.host}}:22/outbound?password=s3cret&amp;delete=true"/>
            <wireTap uri="seda:audit"/>
            <to uri="cxf:bean:invoiceService"/>
            <to uri="activemq:topic:invoices.posted"/>
          </route>
          <route id="audit"><from uri="seda:audit"/><to uri="sql:insert into invoice_audit (id) values (:#id)?dataSource=#erpDs"/></route>
        </routes>"""
    )
    (tmp_path / "beans.xml").write_text(
        """<blueprint xmlns="http://www.osgi.org/xmlns/blueprint/v1.0.0" xmlns:cxf="http://camel.apache.org/schema/cxf">
          <cxf:cxfEndpoint id="invoiceService" address="http://erp.acme.local/InvoiceService" wsdlURL="wsdl/InvoiceService.wsdl"/>
          <camelContext xmlns="http://camel.apache.org/schema/blueprint">
            <route id="postInvoice"><from uri="cxf:bean:invoiceService"/><to uri="direct:book"/></route>
            <route id="book"><from uri="direct:book"/><to uri="https4://ledger.acme.local/api/book?authKey=abc"/></route>
          </camelContext>
        </blueprint>"""
    )
    catalog = scan(tmp_path)
    assert flows(catalog) == {
        "pullInvoices": {
            ("source", "sftp", "sftp://{{partner.host}}:22/outbound"),
            ("target", "soap", "cxf:bean:invoiceService"),
            ("target", "jms", "jms:topic:invoices.posted"),
        },
        "audit": {("target", "db", "sql:#erpDs#invoice_audit")},
        "postInvoice": {("source", "soap", "http://erp.acme.local/InvoiceService")},
        "book": {("target", "http", "https://ledger.acme.local/api/book")},
    }
    text = catalog.model_dump_json()
    assert "s3cret" not in text and "authKey" not in text
    calls = {
        (catalog.interface(e.source).name, catalog.interface(e.target).name)
        for e in catalog.edges
        if e.relation == "calls"
    }
    assert calls == {("pullInvoices", "audit"), ("postInvoice", "book")}
    post = next(i for i in catalog.interfaces if i.name == "postInvoice")
    assert post.attributes["endpoints"][0]["details"]["wsdl"] == "wsdl/InvoiceService.wsdl"


def test_wso2_artifacts(tmp_path: Path) -> None:
    ns = 'xmlns="http://ws.apache.org/ns/synapse"'
    (tmp_path / "endpoint.xml").write_text(
        f'<endpoint {ns} name="ErpOrders"><address uri="https://erp.acme.local/orders" format="soap11"/></endpoint>'
    )
    (tmp_path / "synapse.xml").write_text(
        f"""<definitions {ns}>
          <endpoint name="ErpOrders"><address uri="https://erp.acme.local/orders" format="soap11"/></endpoint>
          <sequence name="toErp"><call><endpoint key="ErpOrders"/></call></sequence>
          <inboundEndpoint name="OrderFiles" protocol="file" sequence="toErp" onError="fault">
            <parameters>
              <parameter name="transport.vfs.FileURI">vfs:sftp://edi:pw@files.acme.local/orders/in</parameter>
              <parameter name="transport.vfs.MoveAfterProcess">vfs:sftp://edi:pw@files.acme.local/orders/done</parameter>
            </parameters>
          </inboundEndpoint>
          <messageStore name="OrderStore" class="org.apache.synapse.message.store.impl.jms.JmsStore">
            <parameter name="store.jms.destination">ORDERS.STORE</parameter>
          </messageStore>
          <messageProcessor name="OrderForwarder" class="org.apache.synapse.message.processor.impl.forwarder.ScheduledMessageForwardingProcessor"
                            messageStore="OrderStore" targetEndpoint="ErpOrders"/>
          <task name="NightlyStock" class="org.apache.synapse.startup.tasks.MessageInjector"><trigger cron="0 0 2 * * ?"/></task>
        </definitions>"""
    )
    catalog = scan(tmp_path / "synapse.xml")
    assert flows(catalog) == {
        "toErp": {("target", "soap", "https://erp.acme.local/orders")},
        "OrderFiles": {
            ("source", "sftp", "sftp://files.acme.local/orders/in"),
            ("target", "sftp", "sftp://files.acme.local/orders/done"),
            ("target", "soap", "https://erp.acme.local/orders"),
        },
        "OrderStore": {("target", "jms", "jms:queue:ORDERS.STORE")},
        "OrderForwarder": {("target", "soap", "https://erp.acme.local/orders")},
        "NightlyStock": set(),
    }
    task = next(i for i in catalog.interfaces if i.name == "NightlyStock")
    assert task.attributes["schedule"] == {"cron": "0 0 2 * * ?"}
    calls = {
        (catalog.interface(e.source).name, catalog.interface(e.target).name)
        for e in catalog.edges
        if e.relation == "calls"
    }
    assert calls == {("OrderFiles", "toErp"), ("OrderForwarder", "OrderStore")}
    assert ":pw@" not in catalog.model_dump_json()
    # a single WSO2 artifact file is recognised on its own
    assert scan(tmp_path / "endpoint.xml").sources[0].stats["documents"] == 1


def test_biztalk_orchestration_binds_ports(tmp_path: Path) -> None:
    (tmp_path / "bindings.xml").write_text(
        """<BindingInfo>
          <ModuleRefCollection><ModuleRef Name="Acme.Orders"><Services>
            <Service Name="Acme.Orders.ProcessOrder" State="Started">
              <Ports><Port Name="RcvOrder"><ReceivePortRef Name="OrdersIn"/></Port>
                     <Port Name="SndErp"><SendPortRef Name="ToErp"/></Port></Ports>
            </Service></Services></ModuleRef></ModuleRefCollection>
          <SendPortCollection><SendPort Name="ToErp"><PrimaryTransport><Address>mssql://erp-db//ERP?</Address>
            <TransportType Name="WCF-SQL"/></PrimaryTransport></SendPort></SendPortCollection>
          <ReceivePortCollection><ReceivePort Name="OrdersIn"><ReceiveLocations><ReceiveLocation Name="OrdersDrop">
            <Address>$(DropRoot)\\Orders\\*.xml</Address><ReceiveLocationTransportType Name="FILE"/><Enable>true</Enable>
          </ReceiveLocation></ReceiveLocations></ReceivePort></ReceivePortCollection>
        </BindingInfo>"""
    )
    catalog = scan(tmp_path)
    assert flows(catalog) == {
        "OrdersIn": {("source", "file", "file:$(DropRoot)/Orders")},
        "ToErp": {("target", "db", "mssql://erp-db//ERP")},
        "Acme.Orders.ProcessOrder": set(),
    }
    calls = {
        (catalog.interface(e.source).name, catalog.interface(e.target).name)
        for e in catalog.edges
        if e.relation == "calls"
    }
    assert calls == {("Acme.Orders.ProcessOrder", "OrdersIn"), ("Acme.Orders.ProcessOrder", "ToErp")}
    drop = next(i for i in catalog.interfaces if i.kind is Kind.esb_endpoint and i.protocol == "file")
    assert drop.attributes["file_mask"] == "*.xml"


def test_biztalk_receive_locations_are_endpoints_of_their_own(corpora: Path) -> None:
    catalog = scan(corpora / "esb" / "biztalk")
    locations = {i.name: i for i in catalog.interfaces if i.kind is Kind.esb_endpoint and "location" in i.attributes}
    assert sorted(locations) == ["FileReceiveLocation", "FtpReceiveLocation"]
    ftp = locations["FtpReceiveLocation"]
    assert (ftp.locator, ftp.protocol) == ("ftp://127.0.0.1:21/receive", "ftp")
    assert {k: ftp.attributes[k] for k in ("adapter", "enabled", "pipeline", "handler", "file_mask")} == {
        "adapter": "FTP",
        "enabled": False,
        "pipeline": "Microsoft.BizTalk.DefaultPipelines.PassThruReceive",
        "handler": "BizTalkServerApplication",
        "file_mask": "*.*",
    }
    ports = {(catalog.interface(e.source).name, e.relation) for e in catalog.edges if e.target == ftp.id}
    assert ports == {("FtpReceivePort", "consumes")}
    send = next(i for i in catalog.interfaces if i.locator == "ftp://127.0.0.1:21/send")
    assert send.attributes["pipeline"] == "Microsoft.BizTalk.DefaultPipelines.PassThruTransmit"
    assert send.attributes["retries"] == "3"
