"""Bring outside data into the knowledge graph and take it out again.

Readers turn files (seed YAML/JSON, neo4j-admin CSV, OBO, OWL/RDF, our Turtle) into
``RawItem``s with file/line locations; ``loaders.pipeline`` validates everything
together with ``kg.validate`` and only then writes; ``loaders.export`` writes the graph
(or one disease's subgraph) out as Turtle, JSON or CSV.
"""
