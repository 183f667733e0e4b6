"""SOAP 1.1 and 1.2 backend: envelopes built from the canonical JSON, faults mapped to errors.

The request payload (after the route's mapping) becomes the operation element's children; the
first element of the response Body becomes the reply's JSON. SOAPAction comes from the config or,
when a WSDL is named, from the WSDL's binding for the operation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import aiohttp
from lxml import etree
from pydantic import Field

from legacy_adapters import xmljson
from legacy_adapters.base import BackendConfig, Call, Registered, Reply
from legacy_adapters.errors import (
    RETRY_STATUSES,
    BackendFault,
    BackendNotFound,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    Outcome,
    error_for_status,
    outcome_of_status,
)

ENVELOPES = {"1.1": "http://schemas.xmlsoap.org/soap/envelope/", "1.2": "http://www.w3.org/2003/05/soap-envelope"}
CONTENT_TYPES = {"1.1": "text/xml; charset=utf-8", "1.2": "application/soap+xml; charset=utf-8"}


class SoapConfig(BackendConfig):
    backend: Literal["soap"] = "soap"
    url: str
    soap_version: Literal["1.1", "1.2"] = "1.1"
    namespace: str = Field(description="target namespace of the operation's element")
    operation: str = Field(description="the operation, also the request element's name")
    soap_action: str | None = Field(default=None, description="default: read from the WSDL, else the operation name")
    wsdl: Path | None = Field(default=None, description="a local WSDL to read the SOAPAction from")
    retry_safe: bool = Field(default=False, description="true only for operations that change nothing")
    not_found: str | None = Field(
        default=None,
        description="a regular expression on the fault string of a Client fault that means 'no such record' "
        "(e.g. '^no order '): answered as not found, like an HTTP 404 or an ODBC query without a row",
    )


def soap_action_from_wsdl(wsdl: Path, operation: str) -> str | None:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.parse(str(wsdl), parser).getroot()
    for element in root.iter():
        if xmljson.local(element.tag) == "operation" and element.get("soapAction") is not None:
            parent = element.getparent()
            if parent is not None and parent.get("name") == operation:
                return element.get("soapAction")
    return None


class SoapBackend(Registered):
    name = "soap"
    Config = SoapConfig

    def __init__(self, config: SoapConfig) -> None:
        self.config = config
        self.retry_safe = config.retry_safe
        action = config.soap_action
        if action is None and config.wsdl is not None:
            action = soap_action_from_wsdl(config.wsdl, config.operation)
        self.action = action if action is not None else config.operation
        self._session: aiohttp.ClientSession | None = None

    def envelope(self, payload: object) -> bytes:
        ns = ENVELOPES[self.config.soap_version]
        envelope = etree.Element(f"{{{ns}}}Envelope", nsmap={"soap": ns, "m": self.config.namespace})
        body = etree.SubElement(envelope, f"{{{ns}}}Body")
        body.append(xmljson.from_json(self.config.operation, payload or {}, self.config.namespace))
        return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")

    async def call(self, request: Call) -> Reply:
        try:
            envelope = self.envelope(request.payload)
        except xmljson.NotXml as exc:
            raise BackendRejected(str(exc)) from None
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.timeout))
        headers = {"Content-Type": CONTENT_TYPES[self.config.soap_version], "X-Correlation-ID": request.correlation_id}
        headers |= {k: v for k, v in request.headers.items() if k.lower() == "traceparent"}
        if self.config.soap_version == "1.1":
            headers["SOAPAction"] = f'"{self.action}"'
        else:
            headers["Content-Type"] += f'; action="{self.action}"'
        try:
            async with self._session.post(self.config.url, data=envelope, headers=headers) as response:
                data = await response.read()
                waited = response.headers.get("Retry-After")
        except TimeoutError:
            raise BackendTimeout(f"the SOAP backend gave no answer within {self.config.timeout:g} s") from None
        except aiohttp.ClientConnectionError as exc:
            raise BackendUnavailable(f"cannot reach the SOAP backend: {type(exc).__name__}") from None
        status = response.status
        if status in RETRY_STATUSES:  # throttled or unavailable, whatever the body says
            raise error_for_status(status, "the SOAP backend", waited)
        try:
            root = xmljson.parse(data)
        except xmljson.HostileXml:
            if not 200 <= status < 300:
                raise error_for_status(status, "the SOAP backend", waited) from None
            raise BackendFault(f"the SOAP backend answered {status} without a SOAP envelope") from None
        body = next((child for child in root if xmljson.local(child.tag) == "Body"), None)
        first = next((child for child in body if isinstance(child.tag, str)), None) if body is not None else None
        if first is not None and xmljson.local(first.tag) == "Fault":
            raise self._fault(first)
        if not 200 <= status < 300:  # an envelope without a Fault is an answer only with a success status
            raise error_for_status(status, "the SOAP backend", waited)
        if first is None:
            raise BackendFault("the SOAP backend's answer has an empty Body")
        return Reply(status, xmljson.to_json(first))

    def _fault(self, fault: etree._Element) -> Exception:
        message, client = _fault_says(fault)
        if client:
            if self.config.not_found and re.search(self.config.not_found, message):
                return BackendNotFound(f"the SOAP backend has no such record: {message}")
            return BackendRejected(f"the SOAP backend rejected the request: {message}")
        return BackendFault(f"the SOAP backend answered with a fault: {message}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _fault_says(fault: etree._Element) -> tuple[str, bool]:
    """A Fault's message, and whether it blames the request (Client, Client.ValidationError, SOAP
    1.2's Sender …) rather than the service."""
    texts = {xmljson.local(e.tag): (e.text or "").strip() for e in fault.iter() if isinstance(e.tag, str)}
    message = texts.get("faultstring") or texts.get("Text") or "SOAP fault"
    code = texts.get("faultcode") or texts.get("Value") or ""
    return message, code.rpartition(":")[2].split(".")[0] in ("Client", "Sender")


def envelope_fault(data: bytes) -> bool:
    """Whether an answer is a SOAP envelope whose Body holds a Fault."""
    try:
        root = xmljson.parse(data)
    except xmljson.HostileXml:
        return False
    return _fault_of(root) is not None


def _fault_of(root: etree._Element) -> etree._Element | None:
    body = next((child for child in root if xmljson.local(child.tag) == "Body"), None)
    first = next((child for child in body if isinstance(child.tag, str)), None) if body is not None else None
    return first if first is not None and xmljson.local(first.tag) == "Fault" else None


def envelope_outcome(status: int, data: bytes) -> Outcome:
    """What a SOAP service's answer says about the call: a Fault by its code (the request's: refused;
    the service's: unknown), anything else by its HTTP status. Merely holding the bytes `Fault`
    makes nothing a fault: the envelope is parsed."""
    if status in RETRY_STATUSES:
        return Outcome.not_made
    if 200 <= status < 300 and b"Fault" not in data:
        return Outcome.made
    try:
        fault = _fault_of(xmljson.parse(data))
    except xmljson.HostileXml:
        return outcome_of_status(status)
    if fault is not None:
        return Outcome.refused if _fault_says(fault)[1] else Outcome.unknown
    return outcome_of_status(status)
