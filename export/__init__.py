"""Model definitions (torch), their ONNX export and the motion-frame contract.

Only ``export.motion_frame`` is imported by the runtime; the torch modules are imported
explicitly (``export.renderer``) so that the CPU runtime runs without torch installed.
"""
