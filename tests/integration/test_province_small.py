"""The province run of scripts/bench/province.py, small: the same code path with its `SMALL` scale (20 windows,
4,000 cases imported, 400 callbacks dispatched by two `callbackd worker` processes and `callbackd beat` through a
real redis-server, a worker SIGKILLed every 6 s, redis-server and PostgreSQL each restarted once), scored, and the
console's ranking page fetched. It starts a PostgreSQL server of its own (it restarts it), so it runs in the
PostgreSQL pass of scripts/test, where PostgreSQL is installed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import POSTGRES

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not POSTGRES, reason="the province run needs PostgreSQL: it runs in the PostgreSQL pass of "
                                            "scripts/test (CALLBACKD_TEST_POSTGRES)"),
]

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "province.py"


def province() -> ModuleType:
    """scripts/bench/province.py, loaded by path (scripts/bench is no package)."""
    spec = importlib.util.spec_from_file_location("province_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_small_province_survives_its_faults_with_every_callback_final_and_nothing_twice(workdir: Path) -> None:
    bench = province()
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(line)

    result = bench.run(bench.SMALL, workdir / "province", say)
    bench.show(result, say)
    assert result.failed == [], "\n".join(lines)
    checked = {name for name, _, _ in result.checks}
    assert {"every callback final", "no placement repeated", "no answer recorded twice", "memory of workers",
            "memory of beat", "memory of server", "scores from the tallies equal scores from the answers",
            "ranking page", "total time"} <= checked
    # the faults happened during the dispatch, not after it
    faults = result.figures["faults"]
    assert result.figures["kills"] >= 2, faults
    assert any("redis-server restarted" in fault for fault in faults), faults
    assert any("pg_ctl restart" in fault for fault in faults), faults
    assert result.figures["callbacks"] == 400
    assert result.figures["placements"] >= 400  # every callback's first attempt, at least, reached the provider
    assert result.figures["scored contacts"] > 0
