// description: How rich each disease's profile is: symptoms, frequency-weighted symptoms, persona strata attributes, windows
// params: none
// columns: disease_id, disease, symptoms, weighted, attributes, windows
MATCH (d:Disease)
OPTIONAL MATCH (d)-[p:PRESENTS]->(s:Symptom)
WITH d, count(DISTINCT s) AS symptoms,
     count(DISTINCT CASE WHEN p.weight IS NOT NULL OR p.frequency_class IS NOT NULL THEN s END) AS weighted
OPTIONAL MATCH (d)-[:PREVALENCE]->(t:Stratum)
WITH d, symptoms, weighted, collect(DISTINCT t.attribute) AS attributes
OPTIONAL MATCH (d)-[:HAS_WINDOW]->(w:TrajectoryWindow)
RETURN d.id AS disease_id, d.name AS disease, symptoms, weighted, attributes,
       count(DISTINCT w) AS windows
ORDER BY disease_id
