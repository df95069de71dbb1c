"""One helper masks credentials inside URLs wherever a URL is shown."""

import pytest

from tmpipe.redaction import redact_url_credentials, redact_urls_in, url_secrets


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://ci:s3cr3t@127.0.0.1:5000", "https://ci:***@127.0.0.1:5000"),
        # an unencoded "@" inside the password leaves nothing of it behind
        ("http://desk:p@ss-w0rd@127.0.0.1:9/v1", "http://desk:***@127.0.0.1:9/v1"),
        # a token used as the user name is masked whole
        ("https://ghp_abcdef123456@webui.internal/api", "https://***@webui.internal/api"),
        ("http://:only-password@host", "http://***@host"),
        ("GET postgresql+psycopg2://pg:pw@db:5432/x failed; retry http://a:b@c/d",
         "GET postgresql+psycopg2://pg:***@db:5432/x failed; retry http://a:***@c/d"),
        # no userinfo: unchanged
        ("/a:b@c", "/a:b@c"),
        ("http://host/path?user=a@b#x@y", "http://host/path?user=a@b#x@y"),
        ("models:/tmpipe.SPX.deepscalper@champion", "models:/tmpipe.SPX.deepscalper@champion"),
        ("mail ops@example.com", "mail ops@example.com"),
    ],
)
def test_url_credentials_are_masked(text, shown):
    assert redact_url_credentials(text) == shown


def test_nested_values_and_keys_are_masked():
    value = {"http://u:pw123456@h": ["x", {"uri": "http://u:pw123456@h/y"}], "n": 3}
    assert redact_urls_in(value) == {"http://u:***@h": ["x", {"uri": "http://u:***@h/y"}], "n": 3}


def test_the_secret_of_a_url_is_known_for_standalone_redaction():
    assert url_secrets("http://desk:p@ss-w0rd@127.0.0.1:9/v1") == ["p@ss-w0rd"]
    assert url_secrets("https://ghp_abcdef123456@webui") == ["ghp_abcdef123456"]
    assert url_secrets("http://127.0.0.1:9/v1") == [] and url_secrets(None) == []
    assert url_secrets("http://u:pw@h") == []  # too short to replace everywhere without mangling text


def test_log_filter_masks_messages_and_tracebacks():
    import io
    import logging

    from tmpipe.redaction import UrlCredentialsFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(UrlCredentialsFilter())
    logger = logging.getLogger("tmpipe.test_redaction")
    logger.addHandler(handler)
    try:
        logger.warning("MLflow at %s is down", "https://ci:p@ss-w0rd-77@mlflow.internal")
        try:
            raise ConnectionError("POST http://ops:webui-pass-88@127.0.0.1:9/api refused")
        except ConnectionError:
            logger.exception("persist failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "https://ci:***@mlflow.internal" in text and "http://ops:***@127.0.0.1:9/api" in text
    assert "ss-w0rd-77" not in text and "webui-pass-88" not in text
