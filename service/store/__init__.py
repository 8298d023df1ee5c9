"""Everything that knows Redis: the key layout (keys.py), the Lua transitions, and one store per record kind."""
