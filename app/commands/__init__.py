"""The `tinystudio` commands, one module per group; app.cli builds the parser and dispatches."""
