"""Reading GEO-Bench-2 datasets as the benchmark distributes them (TACO "tortilla" files)."""
