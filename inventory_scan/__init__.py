"""Discovery of legacy integration points into a `Catalog`.

from inventory_scan import Catalog, FileScan, FileSource
catalog, errors = FileScan().run([FileSource(path=Path("/srv/edi"))])
"""

from inventory_scan.catalog import (
    SCHEMA_VERSION,
    Activity,
    Cadence,
    Catalog,
    Direction,
    Edge,
    Evidence,
    Interface,
    Kind,
    Source,
    interface_id,
)
from inventory_scan.config import FileSource, ScanConfig
from inventory_scan.entities import EntityRule
from inventory_scan.errors import CatalogError, ConfigError, HostKeyError, ScanError, SourceError
from inventory_scan.files.scan import FileScan

__all__ = [
    "SCHEMA_VERSION",
    "Activity",
    "Cadence",
    "Catalog",
    "CatalogError",
    "ConfigError",
    "Direction",
    "Edge",
    "EntityRule",
    "Evidence",
    "FileScan",
    "FileSource",
    "HostKeyError",
    "Interface",
    "Kind",
    "ScanConfig",
    "ScanError",
    "Source",
    "SourceError",
    "interface_id",
]
