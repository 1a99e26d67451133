"""The command line: `app.py` registers one thin module per subcommand (parse options, call the
library, report on stderr). Only this package imports typer; heavy imports live inside the commands."""
