"""Shared SenML test data: fixture paths, clock, sensor addresses and the RFC 8428 examples."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sensors.topics import SensorAddress

PAYLOADS = Path(__file__).resolve().parent.parent / "fixtures" / "payloads"
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
NOW_S = NOW.timestamp()
BIN = SensorAddress("edinburgh", "waste_bin", "em400-0042")
AIR = SensorAddress("aberdeen", "air_quality", "sds011-5331")
METER = SensorAddress("camden", "energy_meter", "meter-17")

# The four RFC 8428 section 5.1 examples exactly as domain.md section 3 lists them.
RFC_5_1_1 = '[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]'
RFC_5_1_2_A = (
    '[{"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},'
    '{"n":"current","u":"A","v":1.2}]'
)
RFC_5_1_2_B = (
    '[{"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,"bu":"A","bver":5,'
    '"n":"voltage","u":"V","v":120.1},{"n":"current","t":-5,"v":1.2},'
    '{"n":"current","t":-4,"v":1.3},{"n":"current","t":-3,"v":1.4},'
    '{"n":"current","t":-2,"v":1.5},{"n":"current","t":-1,"v":1.6},'
    '{"n":"current","v":1.7}]'
)
RFC_5_1_6 = (
    '[{"bn":"2001:db8::2/","bt":1.320078429e+09,"n":"temperature","u":"Cel","v":25.2},'
    '{"n":"humidity","u":"%RH","v":30},'
    '{"bn":"2001:db8::1/","n":"temperature","u":"Cel","v":12.3},'
    '{"n":"humidity","u":"%RH","v":67}]'
)
