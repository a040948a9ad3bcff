"""``mcp-ble bench``: discovery, connection, transfer and load benchmarks on the simulator.

The suite runs the server's own code (``BleApp``, the enabled plugins, the MCP layer) on the
simulated backend with a virtual clock, over a benchmark world written for the run:

- discovery and connection benchmarks: 10 runs each, min / median / mean / max,
- transfer: throughput and latency of reads, writes with and without response and notifications,
  at several payload sizes,
- a load test: ``deviceCount`` devices, ``operationCount`` operations in batches of
  ``concurrentOperations``, a read/write mix; success rate and latency percentiles,
- micro-benchmarks of the server's own cost in real time: advertisement ingestion through the
  discovery pipeline, notification ingestion into subscription buffers, memory per tracked
  device, and the MCP overhead of ``ble_read`` against a trivial tool on the same server.

Radio figures are simulated time (``simulated: true``) and come with their ideal from
:mod:`mcp_ble.backends.simulated.theory` and the ratio measured / ideal; micro-benchmarks are
real time and have no ideal (their targets are printed instead). ``--compare A.toml B.toml`` runs
the same suite under two settings files (two plugin sets) and prints B / A for every figure.

Modules: ``command`` (arguments and the command), ``suite`` (the groups in order), ``radio``,
``micro``, ``tokens``, ``soak`` and ``retry`` (the groups), ``world`` (the benchmark world),
``results`` (figures and tables), ``base`` (what every group uses).
"""
