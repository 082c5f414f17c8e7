// description: A disease's risk factors with prevalence, overall or within a (possibly joint) stratum
// params: disease (Disease id)
// columns: risk_factor_id, risk_factor, kind, prevalence, stratum_id, attribute, value
MATCH (d:Disease {id: $disease})-[r:RISK]->(f:RiskFactor)
OPTIONAL MATCH (s:Stratum {id: r.stratum})
RETURN f.id AS risk_factor_id, f.name AS risk_factor, f.kind AS kind, r.prevalence AS prevalence,
       r.stratum AS stratum_id, s.attribute AS attribute, s.value AS value
ORDER BY risk_factor_id, stratum_id
