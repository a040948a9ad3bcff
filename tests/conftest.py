from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


# Async tests and fixtures run under anyio's pytest plugin (anyio_mode = "auto" in pyproject),
# which keeps an async fixture's setup and teardown in the test's task: the MCP client's cancel
# scopes require that.
@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
