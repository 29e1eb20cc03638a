"""The cisco_iosxe platform."""
