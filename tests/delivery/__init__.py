"""Tests of asched.delivery: the engine, the typist and the agent profiles."""
