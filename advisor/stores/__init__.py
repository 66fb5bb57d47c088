"""Vector stores: one interface (base), FAISS and Milvus behind it, and the factory that picks one."""

from advisor.stores.base import StoreRecord, VectorStore, doc_key
from advisor.stores.factory import create_store, elsewhere, open_store, record_from_json, store_mismatch

__all__ = [
    "StoreRecord",
    "VectorStore",
    "create_store",
    "doc_key",
    "elsewhere",
    "open_store",
    "record_from_json",
    "store_mismatch",
]
