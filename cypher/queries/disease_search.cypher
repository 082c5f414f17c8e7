// description: Diseases whose id, name or a synonym contains the text (case-insensitive)
// params: text (part of a disease name)
// columns: disease_id, disease, codes
MATCH (d:Disease)
WHERE toLower(d.name) CONTAINS toLower($text) OR toLower(d.id) CONTAINS toLower($text)
   OR any(s IN coalesce(d.synonyms, []) WHERE toLower(s) CONTAINS toLower($text))
OPTIONAL MATCH (d)-[:CODED_AS]->(c:IcdCode)
RETURN d.id AS disease_id, d.name AS disease, collect(c.code) AS codes
ORDER BY disease
LIMIT 25
