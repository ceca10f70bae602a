"""The front door: the ``emote`` command line.

One module per concern, each subcommand calling into the package that does the work:
``offline`` (prepare, render, export: engines.pipeline, engines.avatar, export.onnx_export),
``serve`` (stream_server), ``bench`` (bench.latency over measure/), ``train`` (train, eval:
training/). ``cli`` builds the parser and turns user-facing failures into one line and exit
status 2. This is the only package that may import every other one.
"""
