// description: A disease's own properties and its ICD-10-CM codes (engine profile, part 1)
// params: disease (Disease id)
// columns: disease_id, disease, synonyms, description, prevalence, source, codes
MATCH (d:Disease {id: $disease})
OPTIONAL MATCH (d)-[r:CODED_AS]->(c:IcdCode)
WITH d, collect({code: c.code, title: c.title, primary: coalesce(r.primary, false)}) AS coded
RETURN d.id AS disease_id, d.name AS disease, coalesce(d.synonyms, []) AS synonyms,
       d.description AS description, d.prevalence AS prevalence, d.source AS source,
       [x IN coded WHERE x.code IS NOT NULL] AS codes
