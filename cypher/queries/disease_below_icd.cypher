// description: Diseases coded below an ICD-10-CM category (its descendants), nearest first, with their frequency-weighted symptom counts: used when neither the code nor an ancestor is coded
// params: icd (ICD-10-CM category or code with subcodes, e.g. E11)
// columns: disease_id, disease, coded_as, distance, primary, weighted
MATCH p = (c:IcdCode {code: $icd})-[:PARENT_OF*1..6]->(a:IcdCode)
MATCH (d:Disease)-[r:CODED_AS]->(a)
WITH d, a, length(p) AS distance, coalesce(r.primary, false) AS primary
OPTIONAL MATCH (d)-[w:PRESENTS]->(:Symptom)
WHERE w.weight IS NOT NULL OR w.frequency_class IS NOT NULL
RETURN d.id AS disease_id, d.name AS disease, a.code AS coded_as, distance, primary,
       count(w) AS weighted
ORDER BY distance, coded_as, disease_id
