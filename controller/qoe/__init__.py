"""Quality-of-experience models: one implementation each, shared by compile and verify."""
