"""What a run means to a reader: the typed results.json schema (written and read by the same classes),
ranking and recommendation, charts, the markdown/HTML report and run comparison."""
