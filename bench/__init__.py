"""Speed benchmarks: `make bench` (python -m bench) runs each and reports it against its target."""
