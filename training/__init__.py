"""training: see its issue; nothing here yet."""
