"""kosov data tools: Korean datasets in (generators, quality gates, chat I/O with provenance).

This package never imports `training`: data flows one way, from here to datasets on disk to training.
"""
