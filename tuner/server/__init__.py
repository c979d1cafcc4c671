"""Triton servers the tuner drives: started here (embedded) or already running (remote)."""
from tuner.server.client import LoadError, TritonControl
from tuner.server.embedded import EmbeddedServer
from tuner.server.remote import RemoteServer

__all__ = ["EmbeddedServer", "LoadError", "RemoteServer", "TritonControl"]
