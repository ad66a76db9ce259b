"""Tests of asched.install that need no systemd (the real ones are in tests/systemd)."""
