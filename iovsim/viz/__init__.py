"""Seeing a run: figures and HTML reports from a run folder (`plots`, `report`), sumo-gui overlays
through traci (`gui`), and progress output (`progress`). See docs/visualization.md.

Submodules are imported on use, so `import iovsim.viz` costs nothing (no matplotlib, no rich).
"""
