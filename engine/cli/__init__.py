"""The ``kgsynth`` command line."""
