"""Tests of asched.daemon: scheduler, fleet, lifecycle and hardening, with real daemons."""
