"""Until the move of controller/render/cisco_sdwan.py here: the renderer, from where it is (being edited)."""

from controller.render.cisco_sdwan import RENDERER as RENDERER
