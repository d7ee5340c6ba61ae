"""Windows of the embedded file cache end `window` seconds after they open, however many events."""

import pytest
import time_machine

from api.window_counters import window_counter_clear, window_counter_get, window_counter_incr


@pytest.fixture
def file_cache(settings, tmp_path):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
    }


def test_a_window_ends_on_time_however_many_events(file_cache):
    key = "window-test:events"
    window_counter_clear(key)
    with time_machine.travel(0, tick=False) as traveller:
        traveller.move_to(1_800_000_000)
        assert [window_counter_incr(key, window=60, use="api_throttle") for _ in range(3)] == [1, 2, 3]
        traveller.shift(50)
        assert window_counter_incr(key, window=60, use="api_throttle") == 4
        traveller.shift(11)  # 61 s after the window opened (it lasted 5 minutes after the last event)
        assert window_counter_get(key, use="api_throttle") == 0
        assert window_counter_incr(key, window=60, use="api_throttle") == 1
