"""The fortios_sdwan platform."""
