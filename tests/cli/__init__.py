"""Tests of asched.cli: the commands, in process and as real processes."""
