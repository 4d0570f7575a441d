"""Messages to consumers: reminders, disconnection notices, power restored — behind a notifier."""

from cloud.notify.messages import Message, MessageKind, format_inr
from cloud.notify.notifier import Notifier, RecordingNotifier

__all__ = ["Message", "MessageKind", "Notifier", "RecordingNotifier", "format_inr"]
