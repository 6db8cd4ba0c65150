"""Sandbox: run untrusted programs isolated by default. Torch-free."""
