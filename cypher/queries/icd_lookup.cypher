// description: One ICD-10-CM code of the catalogue with its title and kind (empty if unknown)
// params: icd (ICD-10-CM code)
// columns: code, title, kind
MATCH (c:IcdCode {code: $icd})
RETURN c.code AS code, c.title AS title, c.kind AS kind
