"""``python -m dietsnn_deploy.cli …`` (what ``torchrun … -m dietsnn_deploy.cli`` runs)."""

from dietsnn_deploy.cli import main

main()
