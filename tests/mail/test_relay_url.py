"""TIDINGS_PLATFORM_MAIL_RELAY and TIDINGS_PLATFORM_MAIL_FROM: what they may say, and a
clear refusal, without the URL (it may hold a password), of anything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidings.core.settings import Settings
from tidings.mail.relay import RelayConfig, RelayUrlError, parse_relay_url
from tidings.mail.sender import PlatformMailSender


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://localhost", RelayConfig("localhost", 25, "none")),
    ("smtp://10.0.0.5:2525", RelayConfig("10.0.0.5", 2525, "none")),
    ("smtp+starttls://mail.example.com", RelayConfig("mail.example.com", 587, "starttls")),
    ("smtps://ann%40example.com:p%3Ass@mail.example.com:4650?ca_file=/etc/ca.pem",
     RelayConfig("mail.example.com", 4650, "tls", "ann@example.com", "p:ss", "/etc/ca.pem")),
])
def test_a_relay_url_names_host_port_security_and_login(url: str,
                                                        expected: RelayConfig) -> None:
    assert parse_relay_url(url) == expected


@pytest.mark.parametrize(("url", "says"), [
    ("http://mail.example.com", "must start with smtp://"),
    ("mail.example.com:25", "must start with smtp://"),
    ("smtp://", "names no host"),
    ("smtp://mail.example.com:99999", "port"),
    ("smtp://ann:hunter2@mail.example.com", "need smtp\\+starttls://"),
    ("smtps://mail.example.com?verify=no", "only the option ca_file"),
])
def test_a_bad_relay_url_is_refused_without_quoting_it(url: str, says: str) -> None:
    with pytest.raises(RelayUrlError, match=says) as refused:
        parse_relay_url(url)
    assert "hunter2" not in str(refused.value)
    assert "mail.example.com" not in str(refused.value)


def test_the_sender_keeps_mail_without_a_relay_and_refuses_a_bad_from(tmp_path: Path) -> None:
    kept = PlatformMailSender.from_settings(Settings(data_dir=tmp_path))
    assert (kept.via, kept.sender) == ("mailbox", "notices@tidings.invalid")
    relayed = PlatformMailSender.from_settings(Settings(
        data_dir=tmp_path, platform_mail_relay="smtp://127.0.0.1:2525",
        platform_mail_from="Ops@Example.COM"))
    assert (relayed.via, relayed.sender) == ("relay", "Ops@example.com")
    with pytest.raises(ValueError, match="TIDINGS_PLATFORM_MAIL_FROM"):
        PlatformMailSender.from_settings(Settings(data_dir=tmp_path,
                                                  platform_mail_from="Tidings <x@y.z>"))


def test_the_relay_url_is_not_in_the_settings_repr(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, platform_mail_relay="smtps://a:hunter2@b")
    assert "hunter2" not in repr(settings)
