// description: The ancestors of an ICD-10-CM code up to its chapter, nearest first
// params: icd (ICD-10-CM code, e.g. G30.9)
// columns: code, title, kind, distance
MATCH p = (a:IcdCode)-[:PARENT_OF*1..6]->(c:IcdCode {code: $icd})
RETURN a.code AS code, a.title AS title, a.kind AS kind, length(p) AS distance
ORDER BY distance
