"""The cutover tests' stores: a SQLite file, and a database of its own on the real PostgreSQL."""

from tests.cutover.conftest import postgres_url, store, store_location, webhook

__all__ = ["postgres_url", "store", "store_location", "webhook"]
