// description: Every population: who, where, ages, year and size (for prevalence conversion)
// params: none
// columns: population_id, name, synonyms, area, min_age, max_age, sex, year, size, status, source
MATCH (p:Population)
RETURN p.id AS population_id, p.name AS name, coalesce(p.synonyms, []) AS synonyms,
       p.area AS area, p.min_age AS min_age, p.max_age AS max_age, p.sex AS sex, p.year AS year,
       p.size AS size, p.status AS status, p.source AS source
ORDER BY population_id
