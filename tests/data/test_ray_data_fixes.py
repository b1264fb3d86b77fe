import ray.data

from mpmae.data import ray_data_fixes
from mpmae.data.reservation_wait import ReservationWait
from mpmae.data.spin_guard import SpinGuard


def test_install_adds_each_callback_once():
    context = ray.data.DataContext()
    ray_data_fixes.install(context)
    ray_data_fixes.install(context)
    assert context.custom_execution_callback_classes == [SpinGuard, ReservationWait]
