// description: A disease's demographic strata with their national shares (persona alignment)
// params: disease (Disease id or name)
// columns: stratum_id, attribute, value, share, source
MATCH (d:Disease)-[p:PREVALENCE]->(s:Stratum)
WHERE d.id = $disease OR toLower(d.name) = toLower($disease)
RETURN s.id AS stratum_id, s.attribute AS attribute, s.value AS value, p.share AS share,
       p.source AS source
ORDER BY attribute, value
