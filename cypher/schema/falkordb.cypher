// FalkorDB (embedded) schema: an exact-match index on every label's id and the lookup
// properties of the named queries. FalkorDB has no IF NOT EXISTS and no uniqueness
// constraints here: `kg init` skips existing indexes, and the loaders MERGE on id.
CREATE INDEX FOR (n:Source) ON (n.id);
CREATE INDEX FOR (n:Disease) ON (n.id);
CREATE INDEX FOR (n:IcdCode) ON (n.id);
CREATE INDEX FOR (n:Symptom) ON (n.id);
CREATE INDEX FOR (n:SymptomCategory) ON (n.id);
CREATE INDEX FOR (n:TrajectoryWindow) ON (n.id);
CREATE INDEX FOR (n:Stratum) ON (n.id);
CREATE INDEX FOR (n:RiskFactor) ON (n.id);
CREATE INDEX FOR (n:Drug) ON (n.id);
CREATE INDEX FOR (n:Guideline) ON (n.id);
CREATE INDEX FOR (n:ExampleNote) ON (n.id);
CREATE INDEX FOR (n:Population) ON (n.id);
CREATE INDEX FOR (n:KgsynthMeta) ON (n.id);
CREATE INDEX FOR (n:IcdCode) ON (n.code);
CREATE INDEX FOR (n:Disease) ON (n.name);
