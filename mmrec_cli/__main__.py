from mmrec_cli.main import main

main()
