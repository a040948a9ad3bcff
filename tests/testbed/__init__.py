"""The test bed: real BLE host stacks with no radio.

Virtual peripherals are bumble devices on an in-memory ``LocalLink`` serving the GATT databases of a
world file (the simulated backend's format), so every backend is tested against the same devices
over real HCI, L2CAP and ATT traffic:

- ``peripherals``: the virtual devices of a world.
- ``link``: an HCI transport whose controller sits on the link (for centrals).
- ``bleak_backend``: bleak backend classes that drive a bumble central (bleak's ``backend=``).
- ``fake_simplepyble``: simplepyble's synchronous API on a bumble central in a background thread.
- ``esphome_proxy``: a fake ESPHome Bluetooth proxy serving the native API on 127.0.0.1
  (``esphome_api``: its plaintext and Noise framing) with a bumble central on the link, so
  aioesphomeapi and bleak-esphome reach the same peripherals.
"""
