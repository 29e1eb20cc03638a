"""Until the move of controller/render/fortios_sdwan.py here: the renderer, from where it is (being edited)."""

from controller.render.fortios_sdwan import RENDERER as RENDERER
