from notification.cli import main

main()
