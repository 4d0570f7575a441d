"""DLMS/COSEM codec shared by the gateway (client) and the meter simulator (server)."""
