"""kgsynth test suite."""
