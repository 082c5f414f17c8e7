"""The engine: walks the graph, builds generation specs and prompts, runs LLMs, evaluates."""
