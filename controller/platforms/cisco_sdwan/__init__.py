"""The cisco_sdwan platform."""
