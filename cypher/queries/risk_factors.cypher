// description: A disease's risk factors and comorbidities with prevalence, overall or within a stratum
// params: disease (Disease id or name)
// columns: risk_factor_id, risk_factor, kind, prevalence, stratum, source
MATCH (d:Disease)-[r:RISK]->(f:RiskFactor)
WHERE d.id = $disease OR toLower(d.name) = toLower($disease)
RETURN f.id AS risk_factor_id, f.name AS risk_factor, f.kind AS kind, r.prevalence AS prevalence,
       r.stratum AS stratum, r.source AS source
ORDER BY risk_factor_id, stratum
