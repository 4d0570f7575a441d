"""The few BER pieces ACSE needs: single-byte-tag TLVs and OBJECT IDENTIFIER values."""

from dlms._reader import Reader, encode_length


def tlv(tag: int, value: bytes) -> bytes:
    """One BER TLV with a single-byte tag."""
    return bytes((tag,)) + encode_length(len(value)) + value


def read_tlv(reader: Reader, what: str) -> tuple[int, Reader]:
    """Read one TLV; return its tag and a reader over exactly its value.

    The inner reader keeps absolute offsets, so errors inside point into the APDU.
    """
    tag = reader.u8(f"{what} tag")
    length = reader.axdr_length(f"{what} length")
    return tag, reader.sub(length, what)


def encode_oid(dotted: str) -> bytes:
    """Content octets of an OBJECT IDENTIFIER, e.g. "2.16.756.5.8.1.1" -> 60 85 74 05 08 01 01."""
    arcs = [int(arc) for arc in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39):
        raise ValueError(f"not an object identifier: {dotted}")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def decode_oid(reader: Reader, what: str) -> str:
    """Dotted form of the OBJECT IDENTIFIER content filling `reader`."""
    arcs: list[int] = []
    arc = 0
    pending = False
    while reader.remaining:
        octet = reader.u8(what)
        arc = (arc << 7) | (octet & 0x7F)
        pending = bool(octet & 0x80)
        if arc.bit_length() > 32:
            raise reader.fail(f"{what}: arc too large")
        if not pending:
            arcs.append(arc)
            arc = 0
    if pending or not arcs:
        raise reader.fail(f"{what}: truncated object identifier")
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])
