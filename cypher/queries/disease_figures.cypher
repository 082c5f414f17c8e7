// description: Every curated figure of a disease (its relationships and its windows' observations) with source, status and remarks
// params: disease (Disease id)
// columns: rel, start, end, status, source, remarks
MATCH (d:Disease {id: $disease})-[r]->(x)
WHERE r.status IS NOT NULL OR r.source IS NOT NULL
RETURN type(r) AS rel, d.id AS start, x.id AS end, r.status AS status, r.source AS source,
       r.remarks AS remarks
UNION ALL
MATCH (:Disease {id: $disease})-[:HAS_WINDOW]->(w:TrajectoryWindow)-[o:OBSERVES]->(x)
RETURN 'OBSERVES' AS rel, w.id AS start, x.id AS end, o.status AS status, o.source AS source,
       o.remarks AS remarks
