"""invoke task modules; tasks.py at the repo root assembles them into one Collection."""
