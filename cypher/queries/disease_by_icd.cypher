// description: Diseases coded as an ICD-10-CM code or, failing that, its nearest coded ancestor, with their frequency-weighted symptom counts
// params: icd (ICD-10-CM code)
// columns: disease_id, disease, coded_as, distance, primary, weighted
MATCH p = (a:IcdCode)-[:PARENT_OF*0..6]->(c:IcdCode {code: $icd})
MATCH (d:Disease)-[r:CODED_AS]->(a)
WITH d, a, length(p) AS distance, coalesce(r.primary, false) AS primary
OPTIONAL MATCH (d)-[w:PRESENTS]->(:Symptom)
WHERE w.weight IS NOT NULL OR w.frequency_class IS NOT NULL
RETURN d.id AS disease_id, d.name AS disease, a.code AS coded_as, distance, primary,
       count(w) AS weighted
ORDER BY distance, disease_id
