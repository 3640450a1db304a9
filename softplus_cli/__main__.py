from softplus_cli.cli import main

main()
