from amphisbaena.cli import main

main()
