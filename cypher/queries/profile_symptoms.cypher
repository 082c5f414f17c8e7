// description: A disease's symptoms (presented, or observed in its windows) with weights and categories
// params: disease (Disease id)
// columns: symptom_id, symptom, synonyms, weight, categories
MATCH (d:Disease {id: $disease})-[p:PRESENTS]->(s:Symptom)
OPTIONAL MATCH (s)-[:IN_CATEGORY]->(c:SymptomCategory)
WITH s, p, collect({id: c.id, name: c.name, scheme: c.scheme}) AS cats
RETURN s.id AS symptom_id, s.name AS symptom, coalesce(s.synonyms, []) AS synonyms,
       p.weight AS weight, [x IN cats WHERE x.id IS NOT NULL] AS categories
UNION ALL
MATCH (d:Disease {id: $disease})-[:HAS_WINDOW]->(:TrajectoryWindow)-[:OBSERVES]->(s:Symptom)
OPTIONAL MATCH (s)-[:IN_CATEGORY]->(c:SymptomCategory)
WITH s, collect({id: c.id, name: c.name, scheme: c.scheme}) AS cats
RETURN s.id AS symptom_id, s.name AS symptom, coalesce(s.synonyms, []) AS synonyms,
       null AS weight, [x IN cats WHERE x.id IS NOT NULL] AS categories
