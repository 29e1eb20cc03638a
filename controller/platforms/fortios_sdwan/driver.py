"""Until the move of controller/apply/drivers/fortios_sdwan.py here (being edited): the driver, from where it is."""

from controller.apply.drivers.fortios_sdwan import DRIVER as DRIVER
