"""Device config text, platform-neutral: what it means (:mod:`.meaning`, the types every platform's parser
returns) and the indented-CLI syntax tree IOS-like languages share (:mod:`.cli_tree`).

Part of the platform contract, below apply and render: the platforms' parsers and drivers, apply's IOS-like
driver family, ``explain`` and the BDD probes all read config text through it.
"""
