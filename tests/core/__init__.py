"""Tests of asched.core: triggers, cron, zones, models."""
