"""Duplicated clinical actions: what counts as one, how it is found on write, how it is reviewed.

- ``config``: the clinician-tunable data files (retest intervals, medicines, question concepts);
- ``actions``: a resource read as the care actions it records (pure);
- ``rules``: the five duplicate rules over a new action and the patient's earlier ones (pure);
- ``store``: the action log and findings tables;
- ``detect``: the write step tying them together.
"""
