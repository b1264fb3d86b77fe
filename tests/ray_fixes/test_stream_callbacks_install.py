import ray.data

from mpmae.ray_fixes import stream_callbacks
from mpmae.ray_fixes.stream_callbacks import ReservationWait, SpinGuard


def test_install_adds_each_callback_once():
    context = ray.data.DataContext()
    stream_callbacks.install(context)
    stream_callbacks.install(context)
    assert context.custom_execution_callback_classes == [SpinGuard, ReservationWait]
