"""Tools built on the interpreter's public surface: summary (inspect), comparison (compare),
extract, report and bench."""
