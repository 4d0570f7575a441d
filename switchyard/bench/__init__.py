"""`switchyard bench`: benchmark programs that print figures (no test runs them).

A scenario is a module with a `SCENARIO` object (see `scenario.Scenario`); add its module name to
`SCENARIO_MODULES` and `switchyard bench <name>` exists, with the common options (--runs,
--results-dir, --no-progress), a progress bar, a printed table and a JSON file of the results.
"""

from switchyard.bench.progress import Progress
from switchyard.bench.runner import SCENARIO_MODULES, add_bench_parser, load_scenarios, run_bench
from switchyard.bench.scenario import BenchContext, Figure, RunResult, Scenario

__all__ = [
    "SCENARIO_MODULES",
    "BenchContext",
    "Figure",
    "Progress",
    "RunResult",
    "Scenario",
    "add_bench_parser",
    "load_scenarios",
    "run_bench",
]
