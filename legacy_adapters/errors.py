"""Every error a backend raises. The gateway turns each into an RFC 9457 problem for the consumer.

    BackendError            the backend could not give an answer (status 502)
    ├── BackendTimeout      no answer in time (504)
    ├── BackendUnavailable  cannot connect, or its circuit breaker is open (503)
    ├── BackendFault        the backend answered with a fault or server error (502)
    └── BackendRejected     the backend refused the request as invalid (422)
        └── BackendNotFound the backend has no such record (404 on a read; on a write, a refusal: 422)

Messages are written for the API consumer: they name the backend kind, never a URL with credentials,
a connection string or a traceback.
"""

from __future__ import annotations


class BackendError(Exception):
    status = 502
    title = "Backend error"


class BackendTimeout(BackendError):
    status = 504
    title = "Backend timed out"


class BackendUnavailable(BackendError):
    status = 503
    title = "Backend unavailable"


class BackendFault(BackendError):
    status = 502
    title = "Backend fault"


class BackendRejected(BackendError):
    status = 422
    title = "Backend rejected the request"


class BackendNotFound(BackendRejected):
    status = 404
    title = "Not found"
