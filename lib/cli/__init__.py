"""The commands: `python -m lib COMMAND`, one module per command, each another face of
lib.console; lib.__main__ imports a command's module only when that command runs.

Each command module has `add_arguments(parser)` and `run(args) -> int` (the exit status).
What they share: terminal (exit codes, KuCoin's URLs, credentials from the environment or
asked without echo, yes/no questions) and installation (opening the database and master
key, or saying why not). `simulate` lives with the simulator (lib.kucoin.sim.cli).
"""
