"""The `gateway` command: `main` (the parser), one module per subcommand (`serve`, `keys`, `recordings`, `stats`)."""
