// description: Node counts per label and relationship counts per type
// params: none
// columns: kind, name, count
MATCH (n)
RETURN 'node' AS kind, labels(n)[0] AS name, count(*) AS count
UNION ALL
MATCH ()-[r]->()
RETURN 'relationship' AS kind, type(r) AS name, count(*) AS count
