// description: Every prevalence figure (OCCURS_IN) with the population it counts and its measure
// params: none
// columns: disease_id, disease, prevalence, measure, status, source, population_id
MATCH (d:Disease)-[r:OCCURS_IN]->(p:Population)
RETURN d.id AS disease_id, d.name AS disease, r.prevalence AS prevalence, r.measure AS measure,
       r.status AS status, r.source AS source, p.id AS population_id
ORDER BY disease_id, population_id
