"""Example rlvr plugin package: one verifier, `exact_boxed`, found through an entry point."""
