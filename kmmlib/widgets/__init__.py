"""ipywidgets layers over the plain-Python models, one module per chapter. Imports ipywidgets."""
