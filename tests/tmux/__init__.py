"""Tests of asched.tmux: the client against a real tmux server."""
