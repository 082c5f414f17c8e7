// description: A disease's own properties and its ICD-10-CM codes with their persona restrictions (engine profile, part 1)
// params: disease (Disease id)
// columns: disease_id, disease, synonyms, description, prevalence, source, stage_scale, min_age, max_age, sex, codes
MATCH (d:Disease {id: $disease})
OPTIONAL MATCH (d)-[r:CODED_AS]->(c:IcdCode)
WITH d, collect({code: c.code, title: c.title, primary: coalesce(r.primary, false),
                 min_age: r.min_age, max_age: r.max_age, sex: r.sex}) AS coded
RETURN d.id AS disease_id, d.name AS disease, coalesce(d.synonyms, []) AS synonyms,
       d.description AS description, d.prevalence AS prevalence, d.source AS source,
       d.stage_scale AS stage_scale, d.min_age AS min_age, d.max_age AS max_age, d.sex AS sex,
       [x IN coded WHERE x.code IS NOT NULL] AS codes
