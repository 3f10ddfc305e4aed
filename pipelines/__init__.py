"""pipelines: see its issue; nothing here yet."""
