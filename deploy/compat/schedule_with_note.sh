#!/usr/bin/env bash
# schedule_with_note.sh MINUTES "NOTE" [session:window]
#
# Drop-in for Tmux-Orchestrator's script of the same name, for agents whose prompts call it:
# it sets the agent's next check-in through `asched next`. Same arguments (MINUTES defaults to 3,
# NOTE to "Standard check-in", as before); what changed, on purpose:
#   - One pending check-in per target: a second call replaces the first. The original added a
#     new *recurring* task on every call, and they piled up (REFERENCE failure 13).
#   - Without a target it schedules the pane it runs in ($TMUX_PANE). Outside tmux it stops with
#     exit 2 instead of guessing "tmux-orc:0", a window that may belong to someone else.
#   - MINUTES may be whole or decimal (0.5 is 30 seconds); the arithmetic is bash's own, no bc
#     (a missing bc once broke every send: REFERENCE failure 19) and no date.
#   - NOTE reaches asched as one argument, exactly as given: no eval, no shell re-parsing, no
#     note file.
#   - A target's window name matches whatever its case (orch:developer is the window Developer,
#     as the original's role form was used); one that names no window is stored anyway, with a
#     one-line warning from asched.
# asched is $ASCHED_BIN when set, else `asched` on PATH; the state directory is asched's usual
# one (ASCHED_STATE_DIR, ...). Exit status: asched's (0 ok, 2 bad input), 127 without asched.
set -euo pipefail

prog=${0##*/}

usage() {
    printf 'usage: %s MINUTES "NOTE" [session:window]\n' "$prog"
    printf '  sets the next check-in of the calling tmux pane (or of session:window)\n'
    printf '  MINUTES: whole or decimal, e.g. 15 or 0.5; NOTE: the text typed into the pane\n'
}

fail() {
    printf '%s: %s\n' "$prog" "$1" >&2
    exit 2
}

case "${1-}" in
    -h | --help) usage; exit 0 ;;
esac
[ $# -le 3 ] || { usage >&2; exit 2; }

minutes=${1:-3}
note=${2:-Standard check-in}
target=${3:-}

# Whole minutes (at most 9 digits) and an optional fraction (at most 9 digits): small enough that
# bash's 64-bit arithmetic below cannot overflow, far more than a check-in needs.
# (The digit test comes first: every =~ overwrites BASH_REMATCH, which is read below.)
if [[ ! $minutes =~ [0-9] ]] || [[ ! $minutes =~ ^([0-9]{0,9})(\.([0-9]{0,9}))?$ ]]; then
    fail "MINUTES must be a number of minutes like 15 or 0.5, not '$minutes'"
fi
whole=${BASH_REMATCH[1]:-0}
fraction=${BASH_REMATCH[3]:-}
seconds=$((10#$whole * 60))
if [ -n "$fraction" ]; then
    scale=$((10 ** ${#fraction}))
    seconds=$((seconds + (10#$fraction * 120 + scale) / (2 * scale)))  # rounded to the second
fi
[ "$seconds" -gt 0 ] || fail "MINUTES must come to at least one second, not '$minutes'"

if [ -z "$target" ] && [ -z "${TMUX_PANE:-}" ]; then
    fail "not inside tmux: give the target, e.g. $prog $minutes \"NOTE\" session:window"
fi

if [ -n "${ASCHED_BIN:-}" ]; then
    asched=$ASCHED_BIN
    [ -x "$asched" ] || {
        printf '%s: ASCHED_BIN=%s is not executable\n' "$prog" "$asched" >&2
        exit 127
    }
else
    asched=$(command -v asched) || {
        printf '%s: asched is not on PATH (install it, or set ASCHED_BIN)\n' "$prog" >&2
        exit 127
    }
fi

args=(next)
# --any-case: the old script's "session:role" form names windows like "Developer" in lower case.
[ -z "$target" ] || args+=(--target "$target" --any-case)
# "--" ends the options: a NOTE that starts with "-" is still the message.
args+=(-- "${seconds}s" "$note")

# Not exec: the confirmation below is printed only once asched has stored the check-in. asched
# prints its own one-line error (and exits 2) for a bad note, target or duration.
stored=$("$asched" "${args[@]}")
printf 'Scheduled check-in in %s minutes: %s\n' "$minutes" "$note"
printf '%s\n' "$stored"
