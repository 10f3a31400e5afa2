"""What every other package builds on, and nothing else: no simulator, no models, no frameworks.

* ``offload_common.observation``: the one definition of the observation (NumPy only). The environment compiles it
  into its step; the device runtime (``agents.deploy``) runs the same source on a phone, so it must import without
  the simulator (``envs``), the models (``perception``), Gymnasium or PyTorch.
* ``offload_common.files``: the one way the project writes files (atomically, strict JSON) and checks output paths,
  and the one locator of the shared real data (``shared_data_dir``).
"""
