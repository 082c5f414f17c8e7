// description: The sources behind a disease's curated numbers, with how many figures each backs
// params: disease (Disease id or name)
// columns: source_id, citation, year, url, figures
MATCH (d:Disease)
WHERE d.id = $disease OR toLower(d.name) = toLower($disease)
OPTIONAL MATCH (d)-[r]->()
WITH d, [x IN collect(r.source) WHERE x IS NOT NULL] AS direct
OPTIONAL MATCH (d)-[:HAS_WINDOW]->(w:TrajectoryWindow)
OPTIONAL MATCH (w)-[o:OBSERVES]->()
WITH d, direct, w, [x IN collect(o.source) WHERE x IS NOT NULL] AS observed
WITH d, direct, collect(w.source) AS window_sources, collect(observed) AS observed_lists
WITH d, direct, window_sources, reduce(acc = [], l IN observed_lists | acc + l) AS observed
UNWIND direct + observed + [x IN window_sources + [d.source] WHERE x IS NOT NULL] AS sid
WITH sid, count(*) AS figures
MATCH (s:Source {id: sid})
RETURN s.id AS source_id, s.citation AS citation, s.year AS year, s.url AS url, figures
ORDER BY figures DESC, source_id
