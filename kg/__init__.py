"""The clinical knowledge graph: entity models, stores, named queries, seed content."""
