// description: An ICD-10-CM code (chapter number, block range or code) and every code below it
// params: icd (ICD-10-CM chapter, block or code, e.g. G30)
// columns: code, title, kind, billable, depth
MATCH p = (c:IcdCode {code: $icd})-[:PARENT_OF*0..6]->(x:IcdCode)
RETURN x.code AS code, x.title AS title, x.kind AS kind, coalesce(x.billable, false) AS billable,
       length(p) AS depth
ORDER BY depth, code
