// description: Diseases coded as an ICD-10-CM code or, failing that, its nearest coded ancestor
// params: icd (ICD-10-CM code)
// columns: disease_id, disease, coded_as, distance, primary
MATCH p = (a:IcdCode)-[:PARENT_OF*0..6]->(c:IcdCode {code: $icd})
MATCH (d:Disease)-[r:CODED_AS]->(a)
RETURN d.id AS disease_id, d.name AS disease, a.code AS coded_as, length(p) AS distance,
       coalesce(r.primary, false) AS primary
ORDER BY distance, disease_id
