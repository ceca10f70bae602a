"""The ground floor: torch-free contracts every other package shares.

The session clock (``clock``), the motion frame (``motion_frame``), the motion model's
input/output spec (``motion_spec``) and its audio features (``audio_features``), the
renderer's I/O names and windows (``render_spec``), the compositing formulas both the torch
renderer and the CPU compositor call (``composite``), phone alignments (``phones``), asset
paths (``paths``) and the ``EMOTE_*`` settings (``settings``). Imports numpy and the
standard library only; imports no other package of this project.
"""
