"""Clinical-coherence audits: rules over the graph (``graph``) and over planned specs
(``specs``), with alignment figures against the graph (``alignment``)."""
