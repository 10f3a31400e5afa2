"""Decision makers, how they are trained, how they are judged, and how they ship: four rooms, one interface.

* ``agents.policies``: ``Policy`` (batched observations -> actions) and everything that implements it: fixed
  baselines, the hindsight oracle, CBO, cbo-cond, cachenet, and trained networks (``LearnedPolicy``).
* ``agents.evaluation``: experiment setup and splits, heuristic tuning on training data, paired evaluation on
  held-out traces and scenes, the report.
* ``agents.training``: one training config and one run-folder contract (config, checkpoints, best model, resume)
  for stable-baselines3 and RLlib; ``load_run_policy`` reads any run back as a ``Policy``.
* ``agents.deploy``: ONNX export of a run, and the device runtime (``OnnxPolicy``, ``DeviceFeatures``), which
  imports NumPy and ONNX Runtime only.

A room imports another only through that room's package (``from agents.policies import Policy``), never its modules.
This package imports nothing itself, so the device runtime loads without the simulator or PyTorch.
"""
