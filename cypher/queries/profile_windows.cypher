// description: A disease's time-to-diagnosis windows with stage, keyword density, visits and persistence (longitudinal patients) and every observed frequency (category or symptom)
// params: disease (Disease id)
// columns: window_id, window, order, start_months, end_months, weight, keyword_density, stage, visits, persistence, observations
MATCH (d:Disease {id: $disease})-[:HAS_WINDOW]->(w:TrajectoryWindow)
OPTIONAL MATCH (w)-[o:OBSERVES]->(t)
WITH w, collect({target_id: t.id, name: t.name, kind: labels(t)[0], scheme: t.scheme,
                 description: t.description, frequency: o.frequency}) AS obs
RETURN w.id AS window_id, w.name AS window, w.order AS order, w.start_months AS start_months,
       w.end_months AS end_months, w.weight AS weight, w.keyword_density AS keyword_density,
       w.stage AS stage, w.visits AS visits, w.persistence AS persistence,
       [x IN obs WHERE x.target_id IS NOT NULL] AS observations
ORDER BY order, window_id
