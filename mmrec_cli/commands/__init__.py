"""One thin module per subcommand: parse options, call the library, report on stderr."""
