"""Config loading: defaults, environment overrides and the errors of bad values."""

from __future__ import annotations

import pytest

from aupwatch.errors import ConfigError
from aupwatch.streams.config import load_config


def test_environment_overrides_a_worker_setting() -> None:
    config = load_config(None, {"AUPWATCH_WORKER__SEEN_CHUNK": "64"})
    assert config.worker.seen_chunk == 64
    assert load_config(None, {}).worker.seen_chunk == 512
    assert load_config(None, {"AUPWATCH_WORKER__MAX_UNDECIDED": "0"}).worker.max_undecided == 0
    assert load_config(None, {}).worker.max_undecided == 20_000
    assert load_config(None, {}).worker.fetch_max_wait == 0.1
    assert (
        load_config(None, {"AUPWATCH_WORKER__FETCH_MAX_WAIT": "250ms"}).worker.fetch_max_wait
        == 0.25
    )


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("AUPWATCH_WORKER__SEEN_CHUNK", "0", "worker.seen_chunk must be at least 1"),
        ("AUPWATCH_WORKER__BATCH_SIZE", "0", "worker.batch_size must be at least 1"),
        ("AUPWATCH_WORKER__INTERNAL_BATCH", "-5", "worker.internal_batch must not be negative"),
        ("AUPWATCH_WORKER__SEEN_CHUNK", "'many'", "worker.seen_chunk must be of type int"),
        ("AUPWATCH_WORKER__MAX_UNDECIDED", "-1", "worker.max_undecided must not be negative"),
        ("AUPWATCH_WORKER__MAX_UNDECIDED", "2.5", "worker.max_undecided must be of type int"),
        ("AUPWATCH_WORKER__FETCH_MAX_WAIT", "0", "worker.fetch_max_wait must be between 0.001"),
        ("AUPWATCH_WORKER__FETCH_MAX_WAIT", "61", "worker.fetch_max_wait must be between 0.001"),
    ],
)
def test_bad_worker_settings_are_refused(name: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, {name: raw})
    assert message in str(err.value)
