import ray.data

from mpmae.data import ray_fixes
from mpmae.data.ray_fixes.reservation_wait import ReservationWait
from mpmae.data.ray_fixes.spin_guard import SpinGuard


def test_install_adds_each_callback_once():
    context = ray.data.DataContext()
    ray_fixes.install(context)
    ray_fixes.install(context)
    assert context.custom_execution_callback_classes == [SpinGuard, ReservationWait]
