from fathom.cli.main import main

main()
