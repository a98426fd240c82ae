"""`python -m provisioner` is `envctl`."""

from provisioner.cli import main

main()
