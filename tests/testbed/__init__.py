"""The test bed: real BLE host stacks with no radio.

Virtual peripherals are bumble devices on an in-memory ``LocalLink`` serving the GATT databases of a
world file (the simulated backend's format), so every backend is tested against the same devices
over real HCI, L2CAP and ATT traffic:

- ``peripherals``: the virtual devices of a world.
- ``link``: an HCI transport whose controller sits on the link (for centrals).
- ``bleak_backend``: bleak backend classes that drive a bumble central (bleak's ``backend=``).
- ``fake_simplepyble``: simplepyble's synchronous API on a bumble central in a background thread.
"""
