"""The `musika` command: the registry of every subcommand (daemon, generation, rendering, training, benchmarks)."""
