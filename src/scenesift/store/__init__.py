"""The durable project: SQLite catalog (frames, situations, labels, boxes, campaigns) + arrays."""

from scenesift.store.arrays import ArrayStore, fingerprint
from scenesift.store.errors import StoreError
from scenesift.store.project import Store

__all__ = ["ArrayStore", "Store", "StoreError", "fingerprint"]
