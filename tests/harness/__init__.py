"""The test harness: what tests and benchmarks use to build nodes, networks and people.

Two lanes, one harness:

- in process (``inprocess.py``): a node's application built by ``create_app`` in a
  temporary node directory, with a ``ManualClock``, driven by aiohttp's test client;
  accounts, tokens and signed-in web sessions made directly in its store. Pages, the
  local API, DICOMweb and casework on one node are tested there, at the speed of logic.
- real processes (``nodes.py``, ``cluster.py``, ``people.py``): ``tsfnode`` run as an
  operator runs it, several nodes on distinct 127.x.y.z addresses, each behind a
  userspace proxy (``proxy.py``) that partitions, throttles, delays and cuts; the slow
  lane (``@pytest.mark.slow``), which CI runs too.

``studies.py`` and ``data.py`` give real DICOM files nobody here wrote; ``mounts.py`` a
small tmpfs for full-disk tests; ``waiting.py`` waits on an event, bounded in count and
time, instead of sleeping. ``bench/`` imports this package; nothing under ``tsfnode/``
does.
"""
