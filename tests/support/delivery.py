"""Delivery settings for tests that run the engine on a real tmux server: every wait short."""

from __future__ import annotations

from asched.delivery.settings import DeliverySettings

# Settle, verify and retry in tens of milliseconds, no per-pane gap: what a test waits for is the
# behaviour, not the default pacing (which tests/daemon and the agent tests keep).
FAST = DeliverySettings(settle_s=0.05, verify_delay_s=0.05, min_gap_s=0.0, retry_base_s=0.05)
