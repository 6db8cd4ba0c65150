"""rlvr: reinforcement learning of LLM reasoning with verifiable rewards.

This package root imports nothing heavy, so `import rlvr.types` stays torch-free;
the training core lives in submodules (`rlvr.policy`, `rlvr.trainers`, ...).
"""

__version__ = "0.1.0"
