from fathom.cli import main

main()
