"""The juniper_junos platform."""
