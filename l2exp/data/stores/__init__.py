"""Stores behind one interface (:class:`l2exp.data.stores.base.L2Store`): SQLite and Parquet."""
