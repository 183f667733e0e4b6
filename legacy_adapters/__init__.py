"""One module per legacy transport (SOAP, HTTP, file drop, ODBC), each an async `Backend`.

Imports nothing from `gateway`. See DESIGN.md for the contract.
"""
