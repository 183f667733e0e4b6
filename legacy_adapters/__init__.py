"""One module per legacy transport (SOAP, HTTP, file drop, ODBC), each an async `Backend`, and an
in-memory system of record (`memory`) for tests and for trying routes.

Imports nothing from `gateway`. Importing this package registers every backend:

    from legacy_adapters import create, Call
    backend = create(SoapConfig(url=..., namespace=..., operation="CreateOrder"))
    reply = await backend.call(Call(route="order-create", payload={...}))
"""

from legacy_adapters import file_drop, http, memory, odbc, soap
from legacy_adapters.base import Backend, BackendConfig, Call, Reply, create
from legacy_adapters.errors import (
    BackendError,
    BackendFault,
    BackendNotFound,
    BackendRejected,
    BackendThrottled,
    BackendTimeout,
    BackendUnauthorised,
    BackendUnavailable,
    Outcome,
    outcome_of_status,
)
from legacy_adapters.file_drop import FileDropConfig
from legacy_adapters.http import HttpConfig, OAuth2
from legacy_adapters.memory import MemoryConfig
from legacy_adapters.odbc import OdbcConfig
from legacy_adapters.soap import SoapConfig

BackendSettings = HttpConfig | SoapConfig | FileDropConfig | OdbcConfig | MemoryConfig

__all__ = [
    "Backend",
    "BackendConfig",
    "BackendError",
    "BackendFault",
    "BackendNotFound",
    "BackendRejected",
    "BackendSettings",
    "BackendThrottled",
    "BackendTimeout",
    "BackendUnauthorised",
    "BackendUnavailable",
    "Call",
    "FileDropConfig",
    "HttpConfig",
    "MemoryConfig",
    "OAuth2",
    "OdbcConfig",
    "Outcome",
    "Reply",
    "SoapConfig",
    "create",
    "file_drop",
    "http",
    "memory",
    "odbc",
    "outcome_of_status",
    "soap",
]
