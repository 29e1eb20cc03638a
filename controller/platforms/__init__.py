"""One package per platform: its renderer, capabilities, apply driver and the parser of its config language.

``controller.platforms.<name>.parser`` reads the platform's config text back (see :mod:`controller.configtext.meaning`).
"""
