// description: The sources behind a disease's curated numbers: how many figures each backs, and how many of them are measured, estimate or of no stated status
// params: disease (Disease id or name)
// columns: source_id, citation, year, url, figures, measured, estimate, unstated
MATCH (d:Disease)
WHERE d.id = $disease OR toLower(d.name) = toLower($disease)
OPTIONAL MATCH (d)-[r]->()
WITH d, [x IN collect({s: r.source, st: r.status}) WHERE x.s IS NOT NULL] AS direct
OPTIONAL MATCH (d)-[:HAS_WINDOW]->(w:TrajectoryWindow)
OPTIONAL MATCH (w)-[o:OBSERVES]->()
WITH d, direct, w, [x IN collect({s: o.source, st: o.status}) WHERE x.s IS NOT NULL] AS observed
WITH d, direct, collect({s: w.source, st: w.status}) AS windows, collect(observed) AS lists
WITH d, direct, windows, reduce(acc = [], l IN lists | acc + l) AS observed
UNWIND direct + observed + [x IN windows + [{s: d.source, st: d.status}] WHERE x.s IS NOT NULL] AS row
WITH row.s AS sid, count(*) AS figures,
     sum(CASE row.st WHEN 'measured' THEN 1 ELSE 0 END) AS measured,
     sum(CASE row.st WHEN 'estimate' THEN 1 ELSE 0 END) AS estimate
MATCH (s:Source {id: sid})
RETURN s.id AS source_id, s.citation AS citation, s.year AS year, s.url AS url, figures,
       measured, estimate, figures - measured - estimate AS unstated
ORDER BY figures DESC, source_id
