"""Command-line interface: one small module per subcommand; no model or data logic here."""
