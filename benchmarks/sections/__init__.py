"""The sections of `make bench`, one module each: its run(cfg, folder, exist_ok, done) -> results and its
render(results) -> markdown. benchmarks/bench.py lists them, with what each needs, and runs them."""
