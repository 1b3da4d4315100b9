"""/proc files: where they come from (:mod:`.source`), parsing them and rendering them."""
