"""The ``sig`` decoder plugin: Bluetooth SIG characteristics decoded and named (being built)."""
