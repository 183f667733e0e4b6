"""Errors leave the gateway as RFC 9457 problem+json, with the correlation id, never a traceback."""

from __future__ import annotations

import json
import re
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from aiohttp import web

from legacy_adapters.errors import Outcome

PROBLEM = "application/problem+json"


# Every kind of problem the gateway answers with: its title → what the consumer can do about it.
# Each kind's `type` is a stable URI on the gateway's own /docs page, where this table is shown.
KINDS: dict[str, str] = {
    "API key required": "send your key in the X-API-Key header (or Authorization: Bearer)",
    "Unknown API key": "the key is not valid: ask the gateway's operators for one",
    "Admin key required": "send an admin key in X-Admin-Key",
    "Wrong admin key": "the admin key is not the one the gateway was started with; check it with its operators",
    "Route not allowed": "your key is not scoped to this route: ask for it to be added",
    "Role not allowed": "your admin key's role does not allow this: ask an admin for an operator's key",
    "Out of scope": "the row belongs to a legal entity or route group your admin key does not reach: ask its team",
    "Entity not allowed": "your key is not scoped to this legal entity",
    "Unknown legal entity": "use one of the entities the route lists in /openapi.json",
    "No such route": "no route serves this method and path: see /openapi.json",
    "No such endpoint": "the path is a service endpoint that is switched off here",
    "Method not allowed": "use a method the Allow header names",
    "Not found": "the system of record has no such resource",
    "Version retired": "this version passed its sunset: call its successor, which the Link header names",
    "No such file": "the console has no such file",
    "Malformed JSON": "send one JSON document (no NaN, Infinity or numbers out of range), nested reasonably",
    "Malformed request": "send the JSON object the operation expects",
    "Malformed expected_version": "send expected_version as an integer",
    "Malformed percent": "send percent as a number between 0 and 100",
    "Malformed pins": "send pins as an object of business key → legacy or cloud",
    "Unsupported media type": "send application/json (or text/xml on a SOAP passthrough)",
    "Request body too large": "send a smaller body, or ask for the route's limit to be raised",
    "Request does not match the schema": "fix the fields the errors list names",
    "Request cannot be mapped": "the request lacks a field the backend needs: the detail names it",
    "Header not acceptable": "send the named header as Latin-1 text",
    "Unacceptable XML": "send well-formed XML without a DOCTYPE or entities",
    "Ambiguous envelope": "name one customer (one entity) in the SOAP Body",
    "Idempotency-Key required": "this operation is made once per Idempotency-Key: send one (a UUID) with the call",
    "Idempotency-Key too long": "use an Idempotency-Key of at most 255 characters",
    "Idempotency-Key reused": "a key belongs to one request body: use a new key for a new request",
    "Request in progress": "the same Idempotency-Key is being processed: retry after a moment",
    "Write in doubt": "an earlier try with this key may have been booked: do not resend it, ask the operators",
    "Process refused": "a step's system, or the process's own rule, refused it: the detail says which and why; "
    "what was done before was taken back",
    "Process failed": "a step failed: the detail says which; what was done before was taken back, or the "
    "operators have it in their exception inbox",
    "Process in doubt": "whether a step was made is unknown: do not resend, the operators have it in their inbox",
    "No such process instance": "no process instance started with your key has this status URL",
    "Too many requests": "slow down: retry after the seconds Retry-After says",
    "Bad query": "fix the query parameter the detail names",
    "Actor required": "say who makes the change (X-Actor or actor)",
    "Change refused": "the cutover change is not allowed now: the detail says why",
    "Changed meanwhile": "someone changed the rule first: read it again and retry with its version",
    "No such exception": "no exception has this number: list them with GET /admin/exceptions",
    "Someone acted first": "someone acted on the exception since you read it: the detail says who; read it again",
    "Action refused": "the exception does not allow this action, or the action lacks its note: the detail says why",
    "Refused": "the outbox action is not allowed for this message: the detail says why",
    "Backend rejected the request": "the legacy or cloud system refused the values: the detail says why",
    "Backend answer did not fit": "the backend's answer lacks a field the route maps: tell the operators",
    "Backend answer is not XML": "the SOAP backend answered something else than XML: tell the operators",
    "Backend error": "the backend could not answer: retry later",
    "Backend failed": "the backend failed: retry later",
    "Backend fault": "the backend failed: retry later",
    "Backend timed out": "the backend gave no answer in time: retry later, with the same Idempotency-Key",
    "Backend unavailable": "the backend cannot be reached or its breaker is open: retry later",
    "Backend busy": "the backend takes no more calls at once: nothing was sent, retry after Retry-After seconds",
    "Backend throttled": "the backend asked for a pause: nothing was booked, retry after Retry-After seconds",
    "Backend refused the gateway": "the backend refused the gateway's own credentials: nothing was booked; the "
    "operators must fix the gateway's access, then retry",
    "No backend": "the route has no backend for this side: tell the operators",
    "Key being handed over": "both sides are still owed earlier writes of this key: retry after Retry-After seconds",
    "Cutover store unavailable": "the gateway cannot reach its store: retry later",
    "Write not accepted": "nothing was written: retry, with the same Idempotency-Key",
    "No such accepted write": "use the status URL the 202 answer's Location gave, with the key that sent the write",
    "Write not made": "the accepted write was not made: the detail says why; the operators may replay it",
    "Write made but not recorded": "the write was made, its copy is in doubt: do not resend, ask the operators",
    "Internal error": "the gateway failed: quote the correlation id to its operators",
}


WRITE_MADE = "Write made but not recorded"  # a 503 whose write did happen: its key must not be freed
BUSY = "Backend busy"  # a 503 the gateway answered itself: the backend was not called
THROTTLED = "Backend throttled"  # a 503 + Retry-After: the backend asked for a pause, nothing was booked
REJECTED = "Backend rejected the request"  # the system of record refused the values: a business exception


def type_uri(title: str) -> str:
    """The problem kind's stable `type`: its entry on the gateway's /docs page."""
    return "/docs#problem-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def problem(status: int, title: str, detail: str = "", correlation_id: str = "", **extra: Any) -> web.Response:
    body: dict[str, Any] = {"type": type_uri(title), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if correlation_id:
        body["correlation_id"] = correlation_id
    body.update(extra)
    headers = {"X-Correlation-ID": correlation_id} if correlation_id else {}
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM, headers=headers)


_SOAP = {
    "1.1": ("http://schemas.xmlsoap.org/soap/envelope/", "text/xml; charset=utf-8"),
    "1.2": ("http://www.w3.org/2003/05/soap-envelope", "application/soap+xml; charset=utf-8"),
}


def soap_fault(version: str, status: int, title: str, detail: str, correlation_id: str) -> web.Response:
    """A problem told to a SOAP consumer as a SOAP Fault of the version it spoke, the problem's type,
    status and correlation id in the fault's detail. SOAP 1.1 answers faults with HTTP 500 (WS-I Basic
    Profile R1126); SOAP 1.2 with 400 when the sender is at fault, 500 otherwise."""
    namespace, content_type = _SOAP[version]
    client = status < 500
    text = xml_escape(f"{title}: {detail}" if detail else title)
    problem = (
        f'<b:problem xmlns:b="urn:banyan:problem"><b:type>{xml_escape(type_uri(title))}</b:type>'
        f"<b:status>{status}</b:status><b:correlationId>{xml_escape(correlation_id)}</b:correlationId></b:problem>"
    )
    if version == "1.1":
        code = "s:Client" if client else "s:Server"
        fault = f"<faultcode>{code}</faultcode><faultstring>{text}</faultstring><detail>{problem}</detail>"
        http_status = 500
    else:
        code = "s:Sender" if client else "s:Receiver"
        fault = (
            f"<s:Code><s:Value>{code}</s:Value></s:Code><s:Reason><s:Text xml:lang='en'>{text}</s:Text></s:Reason>"
            f"<s:Detail>{problem}</s:Detail>"
        )
        http_status = 400 if client else 500
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{namespace}">'
        f"<s:Body><s:Fault>{fault}</s:Fault></s:Body></s:Envelope>"
    )
    headers = {"X-Correlation-ID": correlation_id} if correlation_id else {}
    return web.Response(status=http_status, body=body.encode(), headers={**headers, "Content-Type": content_type})


class Problem(Exception):
    """Raise anywhere in a handler or policy to answer with a problem."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        headers: dict[str, str] | None = None,
        outcome: Outcome | None = None,
        **extra: Any,
    ):
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.headers = headers or {}
        self.outcome = outcome  # what a backend's answer said of the write; None: the gateway's own refusal
        self.extra = extra

    def response(self, correlation_id: str, soap: str | None = None) -> web.Response:
        """As problem+json, or as a SOAP Fault of version `soap` for a consumer that speaks SOAP."""
        if soap is not None:
            answer = soap_fault(soap, self.status, self.title, self.detail, correlation_id)
        else:
            extra = self.extra if self.outcome is None else {**self.extra, "outcome": self.outcome.value}
            answer = problem(self.status, self.title, self.detail, correlation_id, **extra)
        answer.headers.update(self.headers)
        return answer


PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "correlation_id": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "string"}},
    },
}
