"""One module per `mmif` subcommand: each defines `configure(parser)` and `main(args) -> int`."""
