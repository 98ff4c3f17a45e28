from live.cli import main

main()
