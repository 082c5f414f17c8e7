// description: A disease's core criteria: groups of symptoms of which every record holds at least one
// params: disease (Disease id)
// columns: criterion, symptom_id
MATCH (d:Disease {id: $disease})-[r:CORE_CRITERION]->(s:Symptom)
RETURN r.group AS criterion, s.id AS symptom_id
ORDER BY criterion, symptom_id
