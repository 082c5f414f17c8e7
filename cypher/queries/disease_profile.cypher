// description: The diseases coded as an ICD-10-CM code and their symptoms, with weights and categories
// params: icd (ICD-10-CM code, e.g. G30.9)
// columns: disease_id, disease, icd, symptom_id, symptom, synonyms, weight, source, category_ids, categories
MATCH (c:IcdCode {code: $icd})<-[:CODED_AS]-(d:Disease)-[p:PRESENTS]->(s:Symptom)
OPTIONAL MATCH (s)-[:IN_CATEGORY]->(cat:SymptomCategory)
WITH d, c, s, p, collect(cat.id) AS category_ids, collect(cat.name) AS categories
RETURN d.id AS disease_id, d.name AS disease, c.code AS icd, s.id AS symptom_id,
       s.name AS symptom, s.synonyms AS synonyms, p.weight AS weight, p.source AS source,
       category_ids, categories
ORDER BY disease_id, weight DESC, symptom_id
