"""Every error `inventory_scan` raises on purpose. Each message says what to do next.

ScanError
├── CatalogError        a catalog file cannot be read or is of another schema version
├── ConfigError         scan.yaml is missing, malformed or names an unset environment variable
└── SourceError         a source cannot be reached or read
    └── HostKeyError    an SFTP server's host key is unknown or has changed
"""


class ScanError(Exception):
    """Base of every error a scan reports to its user."""


class CatalogError(ScanError):
    pass


class ConfigError(ScanError):
    pass


class SourceError(ScanError):
    pass


class HostKeyError(SourceError):
    pass
