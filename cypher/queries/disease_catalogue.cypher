// description: Every disease with its synonyms, prevalence and ICD-10-CM codes (for resolving names and codes)
// params: none
// columns: disease_id, disease, synonyms, prevalence, codes
MATCH (d:Disease)
OPTIONAL MATCH (d)-[r:CODED_AS]->(c:IcdCode)
WITH d, collect({code: c.code, title: c.title, primary: coalesce(r.primary, false)}) AS coded
RETURN d.id AS disease_id, d.name AS disease, coalesce(d.synonyms, []) AS synonyms,
       d.prevalence AS prevalence, [x IN coded WHERE x.code IS NOT NULL] AS codes
ORDER BY disease_id
