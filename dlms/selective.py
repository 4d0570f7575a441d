"""Selective access to profile buffers: by range (from/to a clock value) and by entry."""

from dataclasses import dataclass
from typing import Self

from dlms.axdr import (
    Array,
    Data,
    DoubleLongUnsigned,
    Integer,
    LongUnsigned,
    OctetString,
    Structure,
    as_date_time,
)
from dlms.cosem_time import CosemDateTime
from dlms.errors import DlmsDecodeError
from dlms.obis import CLOCK, Obis

RANGE_DESCRIPTOR = 1
ENTRY_DESCRIPTOR = 2
CLOCK_CLASS_ID = 8


@dataclass(frozen=True, slots=True)
class SelectiveAccess:
    """Selective-Access-Descriptor: a selector and its parameters, as on the wire."""

    selector: int
    parameters: Data


@dataclass(frozen=True, slots=True)
class CaptureObject:
    """A column of a profile: class, logical name, attribute and element (0 = whole)."""

    class_id: int
    logical_name: Obis
    attribute_index: int
    data_index: int = 0

    def to_data(self) -> Structure:
        """structure {long-unsigned, octet-string, integer, long-unsigned}."""
        return Structure(
            (
                LongUnsigned(self.class_id),
                OctetString(self.logical_name.to_bytes()),
                Integer(self.attribute_index),
                LongUnsigned(self.data_index),
            )
        )

    @classmethod
    def from_data(cls, value: Data) -> Self:
        """Read the capture-object structure; any other shape is a decode error."""
        match value:
            case Structure(
                (
                    LongUnsigned(class_id),
                    OctetString(logical_name),
                    Integer(attribute_index),
                    LongUnsigned(data_index),
                )
            ):
                return cls(class_id, Obis.from_bytes(logical_name), attribute_index, data_index)
        raise DlmsDecodeError("capture object is not {class, name, attribute, index}", 0)


# The restricting object IS 15959 profiles are read by: the clock's time (attribute 2).
CLOCK_TIME = CaptureObject(CLOCK_CLASS_ID, CLOCK, 2)


@dataclass(frozen=True, slots=True)
class RangeDescriptor:
    """Rows whose restricting object lies in [from_value, to_value]; no columns = all."""

    from_value: CosemDateTime
    to_value: CosemDateTime
    restricting_object: CaptureObject = CLOCK_TIME
    selected_values: tuple[CaptureObject, ...] = ()

    def to_access(self) -> SelectiveAccess:
        """The descriptor as selector 1 with its structure of four."""
        return SelectiveAccess(
            RANGE_DESCRIPTOR,
            Structure(
                (
                    self.restricting_object.to_data(),
                    OctetString.of_date_time(self.from_value),
                    OctetString.of_date_time(self.to_value),
                    Array(tuple(column.to_data() for column in self.selected_values)),
                )
            ),
        )

    @classmethod
    def from_access(cls, access: SelectiveAccess) -> Self:
        """Interpret selector 1; any other selector or shape is a decode error."""
        if access.selector == RANGE_DESCRIPTOR:
            match access.parameters:
                case Structure((restricting, from_value, to_value, Array(columns))):
                    return cls(
                        as_date_time(from_value),
                        as_date_time(to_value),
                        CaptureObject.from_data(restricting),
                        tuple(CaptureObject.from_data(column) for column in columns),
                    )
        raise DlmsDecodeError(f"selector {access.selector} is not a range descriptor", 0)


@dataclass(frozen=True, slots=True)
class EntryDescriptor:
    """Rows from_entry..to_entry, columns from..to (1-based; 0 as "to" means the last)."""

    from_entry: int
    to_entry: int = 0
    from_selected_value: int = 1
    to_selected_value: int = 0

    def to_access(self) -> SelectiveAccess:
        """The descriptor as selector 2."""
        return SelectiveAccess(
            ENTRY_DESCRIPTOR,
            Structure(
                (
                    DoubleLongUnsigned(self.from_entry),
                    DoubleLongUnsigned(self.to_entry),
                    LongUnsigned(self.from_selected_value),
                    LongUnsigned(self.to_selected_value),
                )
            ),
        )

    @classmethod
    def from_access(cls, access: SelectiveAccess) -> Self:
        """Interpret selector 2; any other selector or shape is a decode error."""
        if access.selector == ENTRY_DESCRIPTOR:
            match access.parameters:
                case Structure(
                    (
                        DoubleLongUnsigned(from_entry),
                        DoubleLongUnsigned(to_entry),
                        LongUnsigned(from_value),
                        LongUnsigned(to_value),
                    )
                ):
                    return cls(from_entry, to_entry, from_value, to_value)
        raise DlmsDecodeError(f"selector {access.selector} is not an entry descriptor", 0)
