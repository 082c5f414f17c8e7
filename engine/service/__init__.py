"""The HTTP service: generation jobs, graph queries and the disease card (``kgsynth serve``)."""
