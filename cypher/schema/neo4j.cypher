// Neo4j schema: a uniqueness constraint on every label's id (which also indexes it),
// plus lookup indexes used by the named queries. Applied by `kgsynth kg init`; idempotent.
CREATE CONSTRAINT source_id IF NOT EXISTS FOR (n:Source) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT disease_id IF NOT EXISTS FOR (n:Disease) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT icd_code_id IF NOT EXISTS FOR (n:IcdCode) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT symptom_id IF NOT EXISTS FOR (n:Symptom) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT symptom_category_id IF NOT EXISTS FOR (n:SymptomCategory) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT trajectory_window_id IF NOT EXISTS FOR (n:TrajectoryWindow) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT stratum_id IF NOT EXISTS FOR (n:Stratum) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT risk_factor_id IF NOT EXISTS FOR (n:RiskFactor) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT drug_id IF NOT EXISTS FOR (n:Drug) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT guideline_id IF NOT EXISTS FOR (n:Guideline) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT example_note_id IF NOT EXISTS FOR (n:ExampleNote) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT population_id IF NOT EXISTS FOR (n:Population) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT kgsynth_meta_id IF NOT EXISTS FOR (n:KgsynthMeta) REQUIRE n.id IS UNIQUE;
CREATE INDEX icd_code_code IF NOT EXISTS FOR (n:IcdCode) ON (n.code);
CREATE INDEX disease_name IF NOT EXISTS FOR (n:Disease) ON (n.name);
