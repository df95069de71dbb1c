"""The WebUI client's errors name the server without the credentials inside its URL."""

import pytest

from tmpipe.errors import StoreError
from tmpipe.store.http import HttpArtifactStore

from ..servers import free_port


def test_errors_mask_credentials_in_the_base_url():
    store = HttpArtifactStore(f"http://ops:webui-pass-88@127.0.0.1:{free_port()}", retries=0)  # nothing listens
    with pytest.raises(StoreError) as err:
        store.list_workflow_symbols()
    assert str(err.value).startswith("GET http://ops:***@127.0.0.1:")
    assert "webui-pass-88" not in str(err.value)
