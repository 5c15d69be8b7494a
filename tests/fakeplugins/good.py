"""Fake plugin: a solver (with an alias), a path and a function-valued loss."""

from nami_core.hookspecs import hookimpl


class FakeEuler:
    def __init__(self, steps: int = 10, *, order: int = 1):
        self.steps = steps
        self.order = order

    def integrate(self, fn, y0, t0, t1, *, time_shape=(), trajectory=False):
        raise NotImplementedError


class FakeLinearPath:
    def interpolate(self, x0, x1, t):
        return (1 - t) * x0 + t * x1

    def velocity(self, x0, x1, t):
        return x1 - x0


def fake_loss(x):
    return x


@hookimpl
def nami_register(register):
    register("solver", "fake_euler", FakeEuler, aliases=("fake-euler-1",))
    register("path", "fake_linear", FakeLinearPath)
    register("loss", "fake_loss", fake_loss)
