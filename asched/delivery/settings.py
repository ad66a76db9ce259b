"""How deliveries behave (the ``[delivery]`` settings), and the text typed for a message."""

from __future__ import annotations

from dataclasses import dataclass, field

from asched.delivery.profiles import BUILTIN, Profile, pick
from asched.tmux.shellguard import DEFAULT_SHELLS, Foreground


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How deliveries behave; durations in seconds."""

    settle_s: float = 0.5
    settle_by_program: dict[str, float] = field(default_factory=dict)
    profiles: tuple[Profile, ...] = BUILTIN  # tried in order; GENERIC when none matches
    verify_delay_s: float = 0.15
    paste_show_s: float = 2.0  # how long a pasted text may take to appear in an input area
    prefix: str = ""
    shells: frozenset[str] = DEFAULT_SHELLS
    copy_mode: str = "wait"  # "wait" for the pane to leave it (within grace), or "cancel" it
    max_parallel: int = 16  # tmux clients at once (TmuxClient's max_calls)
    min_gap_s: float = 0.5
    rate_per_s: float = 50.0
    burst: int = 500
    retry_base_s: float = 0.5
    retry_max_s: float = 15.0

    def settle_for(self, profile: Profile, names: tuple[str, ...] = ()) -> float:
        """The settle delay before Enter: ``settle_by_program`` for one of the foreground
        ``names``, else the profile's own, else ``settle_s``."""
        for name in names:
            if name in self.settle_by_program:
                return self.settle_by_program[name]
        return self.settle_s if profile.settle_s is None else profile.settle_s

    def profile_for(self, fg: Foreground) -> Profile:
        """The agent profile of the program in the foreground."""
        return pick(fg.names, fg.cmdlines, self.profiles)


def with_prefix(prefix: str, message: str) -> str:
    """The text typed for ``message``: the ``[delivery] prefix`` before it, unless the message
    already carries it (check-ins imported from Tmux-Orchestrator keep the text it typed,
    "SCHEDULED CHECK-IN: <note>"; an empty note is the prefix's words alone): never twice."""
    if not prefix or message.startswith(prefix) or message == prefix.rstrip(" \t:>-"):
        return message
    return prefix + message
