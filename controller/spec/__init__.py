"""Versioned policy languages (``apiVersion``). Only the loader imports these."""
