// description: A disease's drugs with class, line of treatment and share of patients taking it
// params: disease (Disease id)
// columns: drug_id, drug, drug_class, line, share
MATCH (d:Disease {id: $disease})-[t:TREATED_WITH]->(x:Drug)
RETURN x.id AS drug_id, x.name AS drug, x.drug_class AS drug_class,
       coalesce(t.line, 'first') AS line, t.share AS share
ORDER BY drug_id
