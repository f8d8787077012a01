"""postline's benchmarks: they print figures and never pass or fail on time."""
