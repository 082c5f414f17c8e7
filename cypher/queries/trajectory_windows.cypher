// description: A disease's time-to-diagnosis windows in order, with per-window observed frequencies
// params: disease (Disease id or name)
// columns: window_id, window, order, start_months, end_months, weight, observations
MATCH (d:Disease)-[:HAS_WINDOW]->(w:TrajectoryWindow)
WHERE d.id = $disease OR toLower(d.name) = toLower($disease)
OPTIONAL MATCH (w)-[o:OBSERVES]->(t)
WITH w, collect({target_id: t.id, target: t.name, kind: labels(t)[0], frequency: o.frequency,
                 source: o.source}) AS obs
RETURN w.id AS window_id, w.name AS window, w.order AS order, w.start_months AS start_months,
       w.end_months AS end_months, w.weight AS weight,
       [x IN obs WHERE x.target_id IS NOT NULL] AS observations
ORDER BY order
