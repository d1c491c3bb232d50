"""``pyjobset demo``: a guided tour and a what-if simulator on the embedded simulated cluster.

Role: the package's public face: :func:`run_demo` (the CLI's entry), :class:`DemoOptions`, the sample JobSet
(:func:`sample_jobset`, reused by the chart tests) and :func:`install_crd` (reused by ``pyjobset up`` and the
screenshot tool). Invariants: importing the package starts nothing; kubesim and the controller are imported only
when a demo runs.
"""

from controller.demo.run import DemoResult, check_options, install_crd, run_demo, run_scenario
from controller.demo.scenario import SAMPLE_NAME, DemoOptions, sample_jobset

__all__ = [
    "SAMPLE_NAME",
    "DemoOptions",
    "DemoResult",
    "check_options",
    "install_crd",
    "run_demo",
    "run_scenario",
    "sample_jobset",
]
