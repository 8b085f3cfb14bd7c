"""The app side: the structlog processor and logging handler, the event builder, the
background shipper with its disk spool, and the heartbeat helper's check-ins; nothing here
ever blocks or breaks the host app."""

from mendline.ingest.app._builder import EventBuilder, InApp, encode_event, truncate_utf8
from mendline.ingest.app._capture import Capture, RawException, RawFrame, capture_chain
from mendline.ingest.app._config import SettingProblem, app_setting_problems, load_app_settings
from mendline.ingest.app._heartbeat import Heartbeat, encode_checkin, heartbeat, new_checkin
from mendline.ingest.app._processor import ErrorEventHandler, ErrorEventProcessor, make_shipper
from mendline.ingest.app._shipper import Shipper, ShipperStats
from mendline.ingest.app._spool import Record, Spool
from mendline.ingest.app._testing import pop as stop_capturing
from mendline.ingest.app._testing import push as start_capturing

__all__ = [
    "Capture",
    "ErrorEventHandler",
    "ErrorEventProcessor",
    "EventBuilder",
    "Heartbeat",
    "InApp",
    "RawException",
    "RawFrame",
    "Record",
    "SettingProblem",
    "Shipper",
    "ShipperStats",
    "Spool",
    "app_setting_problems",
    "capture_chain",
    "encode_checkin",
    "encode_event",
    "heartbeat",
    "load_app_settings",
    "make_shipper",
    "new_checkin",
    "start_capturing",
    "stop_capturing",
    "truncate_utf8",
]
