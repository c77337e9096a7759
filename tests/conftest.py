"""Shared test setup: the repo root on sys.path, two CPU threads (the CI machine's cores)."""
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
torch.set_num_threads(2)
