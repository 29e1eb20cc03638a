"""The arista_eos platform."""
