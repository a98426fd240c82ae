"""`python -m provisioner` is `envctl`."""

from provisioner.console import main

main()
