from __future__ import annotations

import pytest

from signaling.settings import OPTIONS, Settings, SettingsError, parse_ice_servers


def test_defaults() -> None:
    settings = Settings.load([], {})
    assert settings == Settings()
    assert settings.port == 5080 and settings.host == "0.0.0.0"


def test_environment_then_flags() -> None:
    env = {
        "PORT": "6000",
        "MAX_ROOM_SIZE": "8",
        "CORS_ALLOWED_ORIGINS": "https://a.example, https://b.example",
    }
    settings = Settings.load(["--port", "7000", "--log-level", "debug"], env)
    assert settings.port == 7000
    assert settings.room_capacity == 8
    assert settings.cors_allowed_origins == ["https://a.example", "https://b.example"]
    assert settings.log_level == "DEBUG"


def test_every_option_has_a_flag_and_an_attribute() -> None:
    defaults = Settings()
    for option in OPTIONS:
        assert hasattr(defaults, option.attribute)
        assert option.flag.startswith("--")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PORT": "http"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"MAX_ROOM_SIZE": "0"}, "MAX_ROOM_SIZE"),
        ({"PING_INTERVAL": "-1"}, "PING_INTERVAL"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"ICE_SERVERS": "http://stun.example"}, "ICE_SERVERS"),
        ({"ICE_SERVERS": "[{"}, "ICE_SERVERS"),
        ({"ICE_SERVERS": '[{"url": "stun:x"}]'}, "ICE_SERVERS"),
        ({"MAX_SDP_CHARS": "300000"}, "MAX_SDP_CHARS"),
    ],
)
def test_errors_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.load([], env)


def test_ice_servers_forms() -> None:
    assert parse_ice_servers("") == []
    assert parse_ice_servers("stun:a:3478, turn:b:3478") == [{"urls": "stun:a:3478"}, {"urls": "turn:b:3478"}]
    servers = '[{"urls": ["turn:t:3478?transport=udp"], "username": "u", "credential": "c"}]'
    assert parse_ice_servers(servers)[0]["username"] == "u"
    assert Settings.load([], {"ICE_SERVERS": servers}).ice_servers[0]["credential"] == "c"
