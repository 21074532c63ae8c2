"""dietsnn-deploy: train DIET-SNN spiking networks and deploy them to Loihi-style fixed point."""

__version__ = "0.1.0"
