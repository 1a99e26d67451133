from mmrec_cli.cli.app import main

main()
