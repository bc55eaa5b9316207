"""Development stand-ins for the outside world: only the dev command, tests and benchmarks import them."""
