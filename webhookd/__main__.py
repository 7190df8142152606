from webhookd.cli import main

main()
