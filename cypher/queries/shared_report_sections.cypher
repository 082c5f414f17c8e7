// description: Report-section guidelines not tied to any disease (the default report structure)
// params: none
// columns: guideline_id, title, text, kind, order, category_id
MATCH (g:Guideline)
WHERE g.kind = 'report_section'
OPTIONAL MATCH (d:Disease)-[:GUIDED_BY]->(g)
WITH g, count(d) AS owners
WHERE owners = 0
RETURN g.id AS guideline_id, g.title AS title, g.text AS text, g.kind AS kind,
       coalesce(g.order, 0) AS order, null AS category_id
ORDER BY order, guideline_id
