"""Until the move of controller/render/juniper_junos.py here: the renderer, from where it is (being edited)."""

from controller.render.juniper_junos import RENDERER as RENDERER
