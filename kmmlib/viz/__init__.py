"""Pictures (matplotlib) of the simulator's state, one module per chapter. Imports matplotlib."""
