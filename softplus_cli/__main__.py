from softplus_cli import main

main()
