"""What the tests and the benchmarks share: a private tmux server, an sd_notify listener,
spawned daemons, a systemd box, statistics."""
