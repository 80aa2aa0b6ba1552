"""JSON payloads of MQTT devices decode point by point; only a non-object payload fails."""

from __future__ import annotations

import orjson
import pytest

from device_profiles.errors import EncodeError, PayloadError
from device_profiles.loader import load_profiles
from device_profiles.mqtt_payload import decode_mqtt_payload, encode_mqtt_payload
from device_profiles.schema import MqttMapping

GOOD = {
    "recording": {"state": "recording"},
    "encoder": {"online": True},
    "storage": {"free_gb": 812.5, "free_pct": 41.0},
    "live": {"state": "live", "bitrate_kbps": 4000},
    "tracking": {"online": False},
    "cameras": {
        "teacher": {"online": True},
        "student": {"online": True},
        "board": {"online": False},
    },
    "audio": {"level_dbfs": -18.5},
}


@pytest.fixture(scope="module")
def mapping() -> MqttMapping:
    mqtt = load_profiles()["recording_room_controller"].mqtt
    assert mqtt is not None
    return mqtt


def test_a_good_payload_decodes_every_point(mapping: MqttMapping) -> None:
    decoded = decode_mqtt_payload(mapping, orjson.dumps(GOOD))
    assert decoded.invalid == []
    assert decoded.values == {
        "recording_state": 1.0,
        "encoder_online": 1.0,
        "storage_free_gb": 812.5,
        "storage_free_pct": 41.0,
        "live_stream_state": 1.0,
        "live_bitrate": 4000.0,
        "tracking_host_online": 0.0,
        "camera_teacher_online": 1.0,
        "camera_student_online": 1.0,
        "camera_board_online": 0.0,
        "audio_level": -18.5,
    }


@pytest.mark.parametrize("payload", [b"{not json", b"", b"\xff\xfe"])
def test_malformed_json_is_a_payload_error(mapping: MqttMapping, payload: bytes) -> None:
    with pytest.raises(PayloadError) as excinfo:
        decode_mqtt_payload(mapping, payload)
    assert excinfo.value.reason == "invalid_json"


@pytest.mark.parametrize("payload", [b"[1, 2]", b"42", b"null", b'"idle"'])
def test_json_that_is_not_an_object_is_a_payload_error(
    mapping: MqttMapping, payload: bytes
) -> None:
    with pytest.raises(PayloadError) as excinfo:
        decode_mqtt_payload(mapping, payload)
    assert excinfo.value.reason == "not_object"


def test_a_missing_path_skips_the_value_and_names_it_invalid(mapping: MqttMapping) -> None:
    payload = {**GOOD, "storage": {"free_pct": 41.0}}
    del payload["audio"]
    decoded = decode_mqtt_payload(mapping, orjson.dumps(payload))
    assert sorted(decoded.invalid) == ["audio_level", "storage_free_gb"]
    assert "storage_free_gb" not in decoded.values
    assert decoded.values["storage_free_pct"] == 41.0


def test_an_unknown_enum_string_is_invalid(mapping: MqttMapping) -> None:
    payload = {**GOOD, "recording": {"state": "rebooting"}}
    decoded = decode_mqtt_payload(mapping, orjson.dumps(payload))
    assert decoded.invalid == ["recording_state"]


@pytest.mark.parametrize("bad", ["812.5", True, None, [1]])
def test_a_number_point_with_a_non_number_value_is_invalid(
    mapping: MqttMapping, bad: object
) -> None:
    payload = {**GOOD, "storage": {"free_gb": bad, "free_pct": 41.0}}
    decoded = decode_mqtt_payload(mapping, orjson.dumps(payload))
    assert decoded.invalid == ["storage_free_gb"]


def test_a_bool_point_takes_only_json_booleans(mapping: MqttMapping) -> None:
    payload = {**GOOD, "encoder": {"online": 1}}
    assert decode_mqtt_payload(mapping, orjson.dumps(payload)).invalid == ["encoder_online"]


def test_encoded_payloads_decode_to_the_same_values(mapping: MqttMapping) -> None:
    values = decode_mqtt_payload(mapping, orjson.dumps(GOOD)).values
    payload = encode_mqtt_payload(mapping, values)
    assert orjson.loads(payload) == GOOD
    assert decode_mqtt_payload(mapping, payload).values == values


def test_encoding_an_unknown_point_or_enum_code_is_an_encode_error(mapping: MqttMapping) -> None:
    with pytest.raises(EncodeError, match="unknown points"):
        encode_mqtt_payload(mapping, {"no_such_point": 1})
    with pytest.raises(EncodeError, match="not one of the enum codes"):
        encode_mqtt_payload(mapping, {"recording_state": 7})
