"""The `tinystudio` commands, one module per command (cmd_NAME in app/commands/NAME.py); app.cli builds the
parser and dispatches; what the pages also use lives in app.workflows."""
