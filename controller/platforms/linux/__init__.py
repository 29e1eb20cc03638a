"""The linux platform."""
