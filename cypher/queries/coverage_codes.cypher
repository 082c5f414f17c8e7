// description: Every ICD-10-CM code of the catalogue and its parent ('' for none), as two parallel lists in one row (one row per code costs the client more than the query; for `kg coverage`)
// params: none
// columns: codes, parents
MATCH (c:IcdCode)
OPTIONAL MATCH (p:IcdCode)-[:PARENT_OF]->(c)
RETURN collect(c.code) AS codes, collect(coalesce(p.code, '')) AS parents
