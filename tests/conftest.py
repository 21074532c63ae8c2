"""Shared pytest setup: one torch thread, since the test machine has two cores shared by many."""

import torch

torch.set_num_threads(1)
