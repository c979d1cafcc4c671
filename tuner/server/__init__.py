"""Triton servers the tuner drives: started here (embedded), in a container (docker), or already
running (remote)."""
from tuner.server.client import LoadError, TritonControl
from tuner.server.docker import DEFAULT_IMAGE, DockerServer
from tuner.server.embedded import EmbeddedServer
from tuner.server.remote import RemoteServer

__all__ = ["DEFAULT_IMAGE", "DockerServer", "EmbeddedServer", "LoadError", "RemoteServer", "TritonControl"]
