from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Hypothesis keeps its example database in ./.hypothesis unless told otherwise: tests write
# nothing into the checkout.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "mcp-ble-hypothesis")
)


# Async tests and fixtures run under anyio's pytest plugin (anyio_mode = "auto" in pyproject),
# which keeps an async fixture's setup and teardown in the test's task: the MCP client's cancel
# scopes require that.
@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
