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


SPRING_SAMPLES = Path(__file__).parent / "spring_integration"


def test_spring_integration_in_a_profile_with_a_namespace_uri_that_is_no_uri(tmp_path: Path) -> None:
    """A copy of the jms sample whose adapters sit in a profile's nested <beans>, declaring the
    integration namespaces there, under a root whose Cloud Foundry namespace has a space in its
    URI: the document is read past that one fault, with a warning naming its line."""
    sample = (SPRING_SAMPLES / "outboundChannelAdapter.xml").read_text()
    body = sample[sample.index("<stream:stdin") : sample.index("</beans:beans>")]
    (tmp_path / "context.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<beans xmlns="http://www.springframework.org/schema/beans"\n'
        '       xmlns:cloud="https://schema.cloudfoundry.org /spring">\n'
        '  <beans profile="cloud" xmlns:int="http://www.springframework.org/schema/integration"\n'
        '         xmlns:jms="http://www.springframework.org/schema/integration/jms"\n'
        '         xmlns:stream="http://www.springframework.org/schema/integration/stream">\n'
        + body.replace("<channel ", "<int:channel ")
        + "  </beans>\n  <cloud:data-source id='dataSource'/>\n</beans>\n"
    )
    catalog, errors = EsbScan().run([EsbSource(str(tmp_path))])
    assert errors == []
    [warning] = catalog.sources[0].warnings
    said = warning.message
    assert said.startswith("line 3: ") and "not a valid URI" in said and "the rest of the document was read" in said
    assert flows(catalog) == {"stdin": {("target", "jms", "jms:queue:requestQueue")}}
    assert [i.name for i in catalog.interfaces if i.kind is Kind.esb_endpoint] == ["jmsout"]


def test_spring_integration_namespaces_beyond_the_samples(tmp_path: Path) -> None:
    """udp, http, amqp, mail, kafka, redis and mongodb adapters, written the way their reference
    pages show them, each under its id with its address."""
    (tmp_path / "context.xml").write_text("""<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:int="http://www.springframework.org/schema/integration"
  xmlns:int-ip="http://www.springframework.org/schema/integration/ip"
  xmlns:int-http="http://www.springframework.org/schema/integration/http"
  xmlns:int-amqp="http://www.springframework.org/schema/integration/amqp"
  xmlns:int-mail="http://www.springframework.org/schema/integration/mail"
  xmlns:int-kafka="http://www.springframework.org/schema/integration/kafka"
  xmlns:int-redis="http://www.springframework.org/schema/integration/redis"
  xmlns:int-mongodb="http://www.springframework.org/schema/integration/mongodb">
  <int-ip:udp-inbound-channel-adapter id="telemetryIn" port="11111" channel="telemetry"/>
  <int-ip:udp-outbound-channel-adapter id="telemetryOut" host="metrics.acme.example" port="11112" channel="telemetry"/>
  <int-http:inbound-gateway id="ordersHttp" path="/orders" request-channel="orders"/>
  <int-amqp:outbound-channel-adapter id="ordersAmqp" channel="orders" exchange-name="erp.orders"/>
  <int-mail:imap-idle-channel-adapter id="invoicesMail" channel="invoices"
      store-uri="imaps://ap:s3cr3t-PLANTED@mail.acme.example/INBOX"/>
  <int-kafka:outbound-channel-adapter id="invoicesKafka" channel="invoices" topic="invoices"/>
  <int-redis:outbound-channel-adapter id="stockRedis" channel="stock" topic="stock-changes"/>
  <int-mongodb:outbound-channel-adapter id="stockMongo" channel="stock" collection-name="stock"/>
</beans>""")
    catalog = scan(tmp_path)
    assert flows(catalog) == {
        "telemetryIn": {("source", "udp", "udp://{app}:11111"), ("target", "udp", "udp://metrics.acme.example:11112")},
        "ordersHttp": {("source", "http", "http://{app}/orders"), ("target", "amqp", "amqp:queue:erp.orders")},
        "invoicesMail": {("source", "mail", "imaps://mail.acme.example/INBOX"), ("target", "kafka", "kafka:invoices")},
        "stockRedis": {("target", "redis", "redis:stock-changes")},
        "stockMongo": {("target", "mongodb", "mongodb:stock")},
    }
    named = {i.locator: i.name for i in catalog.interfaces if i.kind is Kind.esb_endpoint}
    assert named["udp://metrics.acme.example:11112"] == "telemetryOut" and named["kafka:invoices"] == "invoicesKafka"
    assert "PLANTED" not in catalog.model_dump_json()
