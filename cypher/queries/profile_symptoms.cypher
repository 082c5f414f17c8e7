// description: A disease's symptoms (presented, or observed in its windows) with frequency, stage, requirements and categories
// params: disease (Disease id)
// columns: symptom_id, symptom, synonyms, presented, weight, frequency_class, stage, min_age, max_age, sex (the symptom's own, else the PRESENTS row's: an HPO annotation for one sex only), onset (the PRESENTS row's HPO onset term), categories
MATCH (d:Disease {id: $disease})-[p:PRESENTS]->(s:Symptom)
OPTIONAL MATCH (s)-[:IN_CATEGORY]->(c:SymptomCategory)
WITH s, p, collect({id: c.id, name: c.name, scheme: c.scheme}) AS cats
RETURN s.id AS symptom_id, s.name AS symptom, coalesce(s.synonyms, []) AS synonyms,
       true AS presented, p.weight AS weight, p.frequency_class AS frequency_class,
       p.stage AS stage, s.min_age AS min_age, s.max_age AS max_age,
       coalesce(s.sex, p.sex) AS sex, p.onset AS onset,
       [x IN cats WHERE x.id IS NOT NULL] AS categories
UNION ALL
MATCH (d:Disease {id: $disease})-[:HAS_WINDOW]->(:TrajectoryWindow)-[:OBSERVES]->(s:Symptom)
OPTIONAL MATCH (s)-[:IN_CATEGORY]->(c:SymptomCategory)
WITH s, collect({id: c.id, name: c.name, scheme: c.scheme}) AS cats
RETURN s.id AS symptom_id, s.name AS symptom, coalesce(s.synonyms, []) AS synonyms,
       false AS presented, null AS weight, null AS frequency_class, null AS stage,
       s.min_age AS min_age, s.max_age AS max_age, s.sex AS sex, null AS onset,
       [x IN cats WHERE x.id IS NOT NULL] AS categories
