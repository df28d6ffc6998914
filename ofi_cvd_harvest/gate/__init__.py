"""The DQ gate: derive a date × symbol partition, audit it, then publish or quarantine it.

Whatever sits under ``data/ofi_cvd/`` has passed the blocking DoD checks (docs/dq.md,
"The publish rule"). One plain-Python flow, used by the Dagster multi-asset
(``orchestration/assets.py``), ``ofi-cvd-harvest derive`` and ``ofi-cvd-harvest publish``:

* :mod:`.checks`    the one registry of DoD checks (name, asset, blocking, severity, metric);
* :mod:`.area`      the staging area readers never glob (``data/.staging/``), its locks and
                    the clean-up of what a crashed run left there;
* :mod:`.publish`   the publish journal (all five tables or none, rolled forward after a crash),
                    quarantine and the explicit acceptance of a quarantined partition;
* :mod:`.verdict`   ``dq.json``: which checks ran, their values and thresholds, who accepted;
* :mod:`.run`       :func:`~.run.gate_partition`, the write → audit → publish flow.
"""
