"""What needs torch: the renderer and motion-model definitions, their ONNX export, the
torch reference engines and TensorRT's operator check.

No runtime module (engines, stream_server) imports this package; exporting on demand is
the command line's job (``emote``). The contracts it exports against live in ``contracts``.
"""
