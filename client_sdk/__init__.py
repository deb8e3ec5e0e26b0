"""Client SDK: a durable offline outbox and local read model that sync with the server."""

from .background import SyncLoop
from .attachments import AttachmentQueue, BlobState, QueuedBlob, UploadReport, record_attachment, record_signature
from .client import SyncClient, SyncReport, engineer_actor
from .errors import InvalidEvent, RequestRejected, ResetRequired, ServerUnreachable, SyncError, UpgradeRequired
from .status import Activity, EventState, Rollback, SyncStatus
from .store import LocalRejection, OutboxEntry
from .version import SDK_VERSION

__version__ = SDK_VERSION

__all__ = [
    "Activity",
    "EventState",
    "LocalRejection",
    "AttachmentQueue",
    "BlobState",
    "QueuedBlob",
    "UploadReport",
    "record_attachment",
    "record_signature",
    "InvalidEvent",
    "OutboxEntry",
    "RequestRejected",
    "ResetRequired",
    "Rollback",
    "SDK_VERSION",
    "ServerUnreachable",
    "SyncClient",
    "SyncError",
    "SyncLoop",
    "SyncReport",
    "SyncStatus",
    "UpgradeRequired",
    "engineer_actor",
]
