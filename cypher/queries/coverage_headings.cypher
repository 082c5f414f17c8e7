// description: The chapters and blocks of the ICD-10-CM catalogue with their titles (for `kg coverage`)
// params: none
// columns: code, kind, title
MATCH (c:IcdCode)
WHERE c.kind IN ['chapter', 'block']
RETURN c.code AS code, c.kind AS kind, c.title AS title
ORDER BY code
