// description: Guidelines of a disease (report sections, style) and of its symptom categories (annotation)
// params: disease (Disease id)
// columns: guideline_id, title, text, kind, order, category_id, min_words, max_words, sections, voice, note_type
MATCH (d:Disease {id: $disease})-[:GUIDED_BY]->(g:Guideline)
RETURN g.id AS guideline_id, g.title AS title, g.text AS text, coalesce(g.kind, 'annotation') AS kind,
       coalesce(g.order, 0) AS order, null AS category_id,
       g.min_words AS min_words, g.max_words AS max_words, coalesce(g.sections, []) AS sections, g.voice AS voice, g.note_type AS note_type
UNION
MATCH (d:Disease {id: $disease})-[:PRESENTS]->(:Symptom)-[:IN_CATEGORY]->(c:SymptomCategory)
MATCH (c)-[:GUIDED_BY]->(g:Guideline)
RETURN g.id AS guideline_id, g.title AS title, g.text AS text, coalesce(g.kind, 'annotation') AS kind,
       coalesce(g.order, 0) AS order, c.id AS category_id,
       g.min_words AS min_words, g.max_words AS max_words, coalesce(g.sections, []) AS sections, g.voice AS voice, g.note_type AS note_type
UNION
MATCH (d:Disease {id: $disease})-[:HAS_WINDOW]->(:TrajectoryWindow)-[:OBSERVES]->(c:SymptomCategory)
MATCH (c)-[:GUIDED_BY]->(g:Guideline)
RETURN g.id AS guideline_id, g.title AS title, g.text AS text, coalesce(g.kind, 'annotation') AS kind,
       coalesce(g.order, 0) AS order, c.id AS category_id,
       g.min_words AS min_words, g.max_words AS max_words, coalesce(g.sections, []) AS sections, g.voice AS voice, g.note_type AS note_type
