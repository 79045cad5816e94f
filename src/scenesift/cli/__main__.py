from scenesift.cli import main

main()
