"""Tests of asched.store: the SQLite store and its schema."""
