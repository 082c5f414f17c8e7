// description: Example notes of a disease (few-shot context; never to be copied into outputs)
// params: disease (Disease id)
// columns: note_id, origin, text
MATCH (n:ExampleNote)-[:EXAMPLE_OF]->(d:Disease {id: $disease})
RETURN n.id AS note_id, n.origin AS origin, n.text AS text
ORDER BY note_id
