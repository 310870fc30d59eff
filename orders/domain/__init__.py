"""Pure domain rules: no database, no Flask, no I/O."""
