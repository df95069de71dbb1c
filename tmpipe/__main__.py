from tmpipe.cli import main

main()
