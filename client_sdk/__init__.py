"""Client SDK: a durable offline outbox and local read model that sync with the server."""

from .attachments import AttachmentQueue, BlobState, QueuedBlob, UploadReport, record_attachment, record_signature
from .client import SyncClient, SyncReport, engineer_actor
from .errors import RequestRejected, ServerUnreachable, SyncError
from .store import OutboxEntry

__all__ = [
    "AttachmentQueue",
    "BlobState",
    "QueuedBlob",
    "UploadReport",
    "record_attachment",
    "record_signature",
    "OutboxEntry",
    "RequestRejected",
    "ServerUnreachable",
    "SyncClient",
    "SyncError",
    "SyncReport",
    "engineer_actor",
]
